"""The bao CLI's database and lease commands against a real Mayfly and the test PostgreSQL
(started by scripts/test, TLS with sslmode=verify-full). The database and the role are set
up through the API (hvac), as an operator's automation would; the CLI does the rest."""
import secrets

import pytest

from dbtools import admin_sql, connection_url, make_group, superuser_sql, wait_until_gone
from pgtools import can_login, env, login


@pytest.fixture(scope="module")
def group(server):  # one per server: each transport's module run has its own
    return make_group("bao_readers")


@pytest.fixture(scope="module")
def reader(client, group):
    """Database `app` and role `reader` (privileges through `member_of`), made through the API."""
    client.secrets.database.configure(
        name="app", plugin_name="postgresql-database-plugin", allowed_roles=["reader"], connection_url=connection_url(),
        username=env("MAYFLY_TEST_PG_USER"), password=env("MAYFLY_TEST_PG_PASSWORD"))
    client.write_data("database/roles/reader",
                      data={"db_name": "app", "member_of": [group], "default_ttl": "5m", "max_ttl": "10m"})
    return "reader"


def test_read_creds_and_lease_commands(bao, reader, group):
    creds = bao.json("read", "database/creds/reader")
    assert creds["lease_id"].startswith("database/creds/reader/")
    assert creds["renewable"] is True and creds["lease_duration"] == 300
    username, password = creds["data"]["username"], creds["data"]["password"]
    session = login(username, password)
    assert session.returncode == 0 and session.stdout.strip() == username
    assert admin_sql(f"SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                     f"JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{username}' AND g.rolname = '{group}'") == "1"
    # The table output names the lease too.
    table = bao.run("read", "database/creds/reader").stdout
    assert "lease_id" in table and "database/creds/reader/" in table and "username" in table

    looked_up = bao.json("lease", "lookup", creds["lease_id"])["data"]
    assert looked_up["id"] == creds["lease_id"] and looked_up["renewable"] is True and 290 <= looked_up["ttl"] <= 300

    renewed = bao.json("lease", "renew", "-increment=400", creds["lease_id"])
    assert renewed["lease_id"] == creds["lease_id"] and renewed["lease_duration"] == 400 and renewed["renewable"] is True
    assert 390 <= bao.json("lease", "lookup", creds["lease_id"])["data"]["ttl"] <= 400
    # Without -increment the role's default TTL applies again.
    assert bao.json("lease", "renew", creds["lease_id"])["lease_duration"] == 300

    # `bao lease revoke` asks for a background revoke ({"sync": false}, 202): the role is gone shortly.
    revoked = bao.run("lease", "revoke", creds["lease_id"])
    assert "All revocation operations queued successfully" in revoked.stdout
    assert wait_until_gone(username), f"{username} still exists 10 s after `bao lease revoke`"
    assert not can_login(username, password)
    gone = bao.run("lease", "lookup", creds["lease_id"], check=False)
    assert gone.returncode == 2 and "invalid lease" in gone.stderr


def test_lease_revoke_prefix(bao, reader):
    issued = [bao.json("read", "database/creds/reader") for _ in range(3)]
    assert "All revocation operations queued successfully" in bao.run(
        "lease", "revoke", "-prefix", "database/creds/reader").stdout
    for creds in issued:
        assert wait_until_gone(creds["data"]["username"])


def test_unknown_role(bao, reader):
    result = bao.run("read", "database/creds/no-such-role", check=False)
    assert result.returncode == 2 and "Code: 400" in result.stderr


@pytest.fixture(scope="module")
def rotating(client, server):
    """Database `rot` with an admin login of its own (rotate-root changes its password) and a
    static role `migrator` on a login the test owns."""
    admin, admin_password = "bao_adm_" + secrets.token_hex(4), secrets.token_hex(16)
    superuser_sql(f"CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{admin_password}'")
    user = "bao_static_" + secrets.token_hex(4)
    superuser_sql(f"CREATE ROLE {user} LOGIN PASSWORD 'before-mayfly'")
    superuser_sql(f"GRANT {user} TO {admin} WITH ADMIN OPTION")
    client.secrets.database.configure(name="rot", plugin_name="postgresql-database-plugin", allowed_roles=["*"],
                                      connection_url=connection_url(), username=admin, password=admin_password)
    client.secrets.database.create_static_role(
        name="migrator", db_name="rot", username=user,
        rotation_statements=["ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';"], rotation_period=3600)
    return admin, admin_password, user


def test_write_force_rotate_role(bao, rotating):
    """`bao write -f` sends the JSON body `null` (issue 12 finding 2)."""
    _, _, user = rotating
    before = bao.json("read", "database/static-creds/migrator")["data"]
    assert before["username"] == user and can_login(user, before["password"])
    result = bao.run("write", "-f", "database/rotate-role/migrator")
    assert "Success! Data written to: database/rotate-role/migrator" in result.stdout
    after = bao.json("read", "database/static-creds/migrator")["data"]
    assert after["password"] != before["password"] and 3590 <= after["ttl"] <= 3600
    assert can_login(user, after["password"]) and not can_login(user, before["password"])


def test_write_force_rotate_root(bao, rotating):
    admin, admin_password, user = rotating
    assert can_login(admin, admin_password)
    result = bao.run("write", "-f", "database/rotate-root/rot")
    assert "Success! Data written to: database/rotate-root/rot" in result.stdout
    assert not can_login(admin, admin_password), "only the broker knows the admin password now"
    # The broker still works with the new one.
    bao.run("write", "-f", "database/rotate-role/migrator")
    fresh = bao.json("read", "database/static-creds/migrator")["data"]
    assert can_login(user, fresh["password"])
