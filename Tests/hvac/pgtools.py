"""Helpers the hvac modules share: the test PostgreSQL's environment and a login check."""
import os
import subprocess

import pytest


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the hvac suite through scripts/test")
    return value


def login(username, password):
    """`select current_user` as `username` over TLS (verify-full); the finished psql process."""
    dsn = (f"host=127.0.0.1 port={env('MAYFLY_TEST_PG_PORT')} dbname={env('MAYFLY_TEST_PG_DB')} "
           f"user={username} sslmode=verify-full sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
    return subprocess.run(["psql", "-Atq", dsn, "-c", "select current_user"], capture_output=True, text=True,
                          env={**os.environ, "PGPASSWORD": password})


def can_login(username, password):
    """Whether `username` can log in with `password`."""
    return login(username, password).returncode == 0
