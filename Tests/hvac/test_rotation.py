"""hvac's static-role and root-rotation calls against a real Mayfly and the test PostgreSQL.
The database is configured with an admin login of this module's own, because rotating the
root credentials changes its password."""
import secrets
import subprocess

import pytest

from pgtools import can_login, env


def superuser_sql(sql):
    result = subprocess.run(["psql", "-Atq", "-h", env("MAYFLY_TEST_PG_SOCKET_DIR"), "-p", env("MAYFLY_TEST_PG_PORT"),
                             "-U", env("MAYFLY_TEST_PG_SUPERUSER"), "-d", "postgres", "-c", sql],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def admin(server):  # one per server: rotate-root changes its password
    name, password = "hvac_adm_" + secrets.token_hex(4), secrets.token_hex(16)
    superuser_sql(f"CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{password}'")
    return name, password


@pytest.fixture(scope="module")
def database(client, admin):
    name, password = admin
    url = (f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{env('MAYFLY_TEST_PG_PORT')}/"
           f"{env('MAYFLY_TEST_PG_DB')}?sslmode=verify-full&sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
    client.secrets.database.configure(name="rot", plugin_name="postgresql-database-plugin", allowed_roles=["*"],
                                      connection_url=url, username=name, password=password)
    return "rot"


def test_static_roles(client, database, admin):
    user = "hvac_static_" + secrets.token_hex(4)
    superuser_sql(f"CREATE ROLE {user} LOGIN PASSWORD 'before-mayfly'")
    superuser_sql(f"GRANT {user} TO {admin[0]} WITH ADMIN OPTION")
    client.secrets.database.create_static_role(
        name="migrator", db_name=database, username=user,
        rotation_statements=["ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';"], rotation_period=3600)
    assert not can_login(user, "before-mayfly"), "creating the static role rotated the password"
    role = client.secrets.database.read_static_role("migrator")["data"]
    assert role["db_name"] == database and role["username"] == user and role["rotation_period"] == 3600
    assert client.secrets.database.list_static_roles()["data"]["keys"] == ["migrator"]

    creds = client.secrets.database.get_static_credentials("migrator")
    assert creds["lease_id"] == "" and creds["data"]["username"] == user
    assert creds["data"]["rotation_period"] == 3600 and 3590 <= creds["data"]["ttl"] <= 3600
    assert creds["data"]["last_vault_rotation"].endswith("Z")
    assert can_login(user, creds["data"]["password"])

    client.secrets.database.rotate_static_role_credentials("migrator")
    rotated = client.secrets.database.get_static_credentials("migrator")["data"]["password"]
    assert rotated != creds["data"]["password"]
    assert not can_login(user, creds["data"]["password"]) and can_login(user, rotated)


def test_rotate_root_credentials(client, database, admin):
    name, password = admin
    assert can_login(name, password)
    client.secrets.database.rotate_root_credentials(database)
    assert not can_login(name, password), "only the broker knows the admin password now"
    # The broker still works with the new one.
    client.secrets.database.rotate_static_role_credentials("migrator")
    fresh = client.secrets.database.get_static_credentials("migrator")["data"]
    assert can_login(fresh["username"], fresh["password"])
    assert password not in str(client.secrets.database.read_connection(database))
