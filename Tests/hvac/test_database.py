"""hvac's database secrets engine and lease calls against a real Mayfly and the test
PostgreSQL (started by scripts/test, TLS with sslmode=verify-full)."""
import os
import secrets
import subprocess

import hvac.exceptions
import pytest

from pgtools import env, login


def admin_sql(sql):
    """Runs SQL as the broker's (non-superuser) admin login over TLS."""
    dsn = (f"host=127.0.0.1 port={env('MAYFLY_TEST_PG_PORT')} dbname={env('MAYFLY_TEST_PG_DB')} "
           f"user={env('MAYFLY_TEST_PG_USER')} sslmode=verify-full sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
    result = subprocess.run(["psql", "-Atq", dsn, "-c", sql], capture_output=True, text=True,
                            env={**os.environ, "PGPASSWORD": env("MAYFLY_TEST_PG_PASSWORD")})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def group():
    name = "hvac_readers_" + secrets.token_hex(4)
    admin_sql(f"CREATE ROLE {name} NOLOGIN")
    return name


def test_configure_and_roles(client, group):
    url = (f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{env('MAYFLY_TEST_PG_PORT')}/"
           f"{env('MAYFLY_TEST_PG_DB')}?sslmode=verify-full&sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
    client.secrets.database.configure(
        name="app", plugin_name="postgresql-database-plugin", allowed_roles=["reader"],
        connection_url=url, username=env("MAYFLY_TEST_PG_USER"), password=env("MAYFLY_TEST_PG_PASSWORD"))
    config = client.secrets.database.read_connection("app")["data"]
    assert config["allowed_roles"] == ["reader"]
    assert env("MAYFLY_TEST_PG_PASSWORD") not in str(config)
    client.secrets.database.create_role(
        name="reader", db_name="app", default_ttl="5m", max_ttl="10m",
        creation_statements=[f"CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' "
                             f"VALID UNTIL '{{{{expiration}}}}' IN ROLE {group}"])
    role = client.secrets.database.read_role("reader")["data"]
    assert role["db_name"] == "app" and role["default_ttl"] == 300 and role["max_ttl"] == 600
    assert client.secrets.database.list_roles()["data"]["keys"] == ["reader"]


def test_generate_login_renew_revoke(client, group):
    creds = client.secrets.database.generate_credentials("reader")
    assert creds["renewable"] is True and creds["lease_duration"] == 300
    assert creds["lease_id"].startswith("database/creds/reader/")
    username, password = creds["data"]["username"], creds["data"]["password"]
    session = login(username, password)
    assert session.returncode == 0 and session.stdout.strip() == username
    assert admin_sql(f"SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                     f"JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{username}' AND g.rolname = '{group}'") == "1"

    lease = client.sys.read_lease(creds["lease_id"])["data"]
    assert lease["id"] == creds["lease_id"] and 290 <= lease["ttl"] <= 300 and lease["renewable"] is True
    renewed = client.sys.renew_lease(creds["lease_id"], increment=400)
    assert renewed["lease_id"] == creds["lease_id"] and renewed["lease_duration"] == 400 and renewed["renewable"] is True
    listed = client.sys.list_leases("database/creds/reader/")["data"]["keys"]
    assert creds["lease_id"].split("/")[-1] in listed

    client.sys.revoke_lease(creds["lease_id"])
    assert login(username, password).returncode != 0
    assert admin_sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{username}'") == "0"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.read_lease(creds["lease_id"])


def test_no_password_in_logs(client, server):
    creds = client.secrets.database.generate_credentials("reader")
    password = creds["data"]["password"]
    client.sys.revoke_lease(creds["lease_id"])
    log = server.server_log()
    assert creds["data"]["username"] in log  # trace logging records the issuance, so the check means something
    assert password not in log
    with open(env("MAYFLY_TEST_PG_LOG")) as f:
        assert password not in f.read()


def test_revoke_prefix(client):
    issued = [client.secrets.database.generate_credentials("reader") for _ in range(3)]
    client.sys.revoke_prefix("database/creds/reader")
    for creds in issued:
        assert admin_sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{creds['data']['username']}'") == "0"
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.sys.list_leases("database/creds/reader/")


def test_errors(client):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.secrets.database.generate_credentials("no-such-role")
    client.secrets.database.create_role(name="other", db_name="app", creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"])
    with pytest.raises(hvac.exceptions.InternalServerError):
        client.secrets.database.generate_credentials("other")  # not in allowed_roles: 500, as in Vault


def test_custom_statements_need_sudo(client, server, group):
    """Issue 16: custom SQL runs as the broker's admin login, so writing it needs sudo; roles
    without it need none, and hvac's create_role with statements works for root (above)."""
    client.sys.create_or_update_policy("db-operator", 'path "database/*" { capabilities = ["create", "read", "update", "list"] }')
    client.sys.create_or_update_policy("db-admin", 'path "database/*" { capabilities = ["create", "read", "update", "list", "sudo"] }')
    operator = server.client(client.auth.token.create(policies=["db-operator"])["auth"]["client_token"])
    admin = server.client(client.auth.token.create(policies=["db-admin"])["auth"]["client_token"])
    statements = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
                  "GRANT pg_execute_server_program TO \"{{name}}\""]
    with pytest.raises(hvac.exceptions.Forbidden) as refused:
        operator.secrets.database.create_role(name="sneaky", db_name="app", creation_statements=statements)
    assert "creation_statements" in str(refused.value)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.database.read_role("sneaky")
    operator.write_data("database/roles/plain", data={"db_name": "app", "member_of": [group], "default_ttl": "5m"})
    assert operator.secrets.database.read_role("plain")["data"]["custom_statements"] is False
    admin.secrets.database.create_role(name="custom", db_name="app", creation_statements=statements[:1])
    assert operator.secrets.database.read_role("custom")["data"]["custom_statements"] is True
