"""PostgreSQL helpers of the bao suite (the test cluster of scripts/pg-test-cluster; its
environment comes from scripts/test, read through Tests/hvac/pgtools.py)."""
import os
import secrets
import subprocess
import time

from pgtools import env


def _psql(dsn, sql, password=None):
    result = subprocess.run(["psql", "-Atq", dsn, "-c", sql], capture_output=True, text=True,
                            env={**os.environ, **({"PGPASSWORD": password} if password else {})})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def admin_sql(sql):
    """SQL as the broker's (non-superuser) admin login over TLS."""
    return _psql(f"host=127.0.0.1 port={env('MAYFLY_TEST_PG_PORT')} dbname={env('MAYFLY_TEST_PG_DB')} "
                 f"user={env('MAYFLY_TEST_PG_USER')} sslmode=verify-full sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}",
                 sql, env("MAYFLY_TEST_PG_PASSWORD"))


def superuser_sql(sql):
    """SQL as the cluster's superuser over its Unix socket (to make logins the test owns)."""
    return _psql(f"host={env('MAYFLY_TEST_PG_SOCKET_DIR')} port={env('MAYFLY_TEST_PG_PORT')} dbname=postgres "
                 f"user={env('MAYFLY_TEST_PG_SUPERUSER')}", sql)


def make_group(prefix):
    """A fresh NOLOGIN group role for `member_of`; its name."""
    name = prefix + "_" + secrets.token_hex(4)
    admin_sql(f"CREATE ROLE {name} NOLOGIN")
    return name


def role_exists(name):
    return admin_sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'") == "1"


def wait_until_gone(name, seconds=10):
    """Whether the role `name` is gone within `seconds` (a background revoke finishes)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not role_exists(name):
            return True
        time.sleep(0.2)
    return False


def connection_url():
    """A templated connection URL to the test database, verify-full against the test CA."""
    return (f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{env('MAYFLY_TEST_PG_PORT')}/"
            f"{env('MAYFLY_TEST_PG_DB')}?sslmode=verify-full&sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
