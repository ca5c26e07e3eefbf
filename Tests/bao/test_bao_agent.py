"""`bao agent` (OpenBao 2.7's Vault Agent) against a real Mayfly: AppRole auto-auth from
role_id/secret_id files and a template that renders a PostgreSQL credential and a KV
secret. The agent configuration and its policy are read from README.md ("Using Mayfly from
an application"), so the README shows exactly what is tested; only the address and the
paths are replaced. Over TLS the whole life of a credential is followed (render, login,
lease renewals, a KV change, a revoke and the new credential); over the Unix socket, the
first render and login."""
import os
import re
import signal
import stat
import subprocess
import time
from datetime import datetime

import pytest

from dbtools import admin_sql, connection_url, make_group, wait_until_gone
from pgtools import can_login, env, login

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
ROLE_TTL = 30  # seconds: renewals come every ~20 s, so the test sees them without waiting long


def readme_block(language, containing):
    """The fenced `language` block of README.md that contains `containing`."""
    with open(README) as f:
        text = f.read()
    for block in re.findall(rf"```{language}\n(.*?)```", text, re.S):
        if containing in block:
            return block
    pytest.fail(f"README.md has no ```{language} block containing {containing!r}")


def replace_once(text, old, new):
    assert text.count(old) >= 1, f"README's agent configuration no longer contains {old!r}"
    return text.replace(old, new)


def agent_config(server, directory):
    """README's agent configuration, pointed at the test server and directory."""
    config = readme_block("hcl", "auto_auth")
    if server.transport == "tls":
        address = f"https://127.0.0.1:{server.port}"
        config = replace_once(config, '"/etc/orders-agent/ca.pem"', f'"{server.ca}"')
    else:
        address = "unix://" + server.socket
        config = re.sub(r"\n\s*ca_cert\s*=.*", "", config)  # as the README's comment says: no ca_cert
    config = replace_once(config, '"https://mayfly.internal:8200"', f'"{address}"')
    config = replace_once(config, '"/etc/orders-agent/', f'"{directory}/')
    return replace_once(config, '"/run/orders/db.env"', f'"{directory}/db.env"')


def agent_policy():
    """The policy of the README's provisioning block (its heredoc)."""
    block = readme_block("sh", "bao policy write orders-agent")
    return re.search(r"<<'EOF'\n(.*?)\nEOF", block, re.S).group(1) + "\n"


def parse_env(path):
    with open(path) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)


def expiry(lease):
    """`expire_time` (RFC 3339, nanoseconds) as a datetime, to the second."""
    return datetime.fromisoformat(re.sub(r"\.\d+", "", lease["expire_time"]).replace("Z", "+00:00"))


class Agent:
    def __init__(self, binary, server, directory):
        self.directory = directory
        self.config = os.path.join(directory, "orders-agent.hcl")
        with open(self.config, "w") as f:
            f.write(agent_config(server, directory))
        self.env_file = os.path.join(directory, "db.env")
        self.log_path = os.path.join(directory, "agent.log")
        self.log = open(self.log_path, "w")
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        environment["HOME"] = directory
        self.process = subprocess.Popen([binary, "agent", "-config", self.config, "-log-level=debug"],
                                        cwd=directory, env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_for(self, what, predicate, timeout):
        """Polls `predicate` (returning a value or None) until it has a value; fails with the agent's log."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                break
            value = predicate()
            if value:
                return value
            time.sleep(0.25)
        with open(self.log_path) as f:
            log = f.read()
        pytest.fail(f"bao agent: no {what} within {timeout} s (exit code {self.process.poll()}); its log:\n{log[-6000:]}")

    def rendered(self, where=lambda values: True):
        """The rendered file's values once both secrets are in it and `where(values)` holds."""
        def check():
            if not os.path.exists(self.env_file):
                return None
            values = parse_env(self.env_file)
            if {"PGUSER", "PGPASSWORD", "MAYFLY_LEASE_ID", "API_KEY"} <= values.keys() and where(values):
                return values
            return None
        return check

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def provisioned(server, client, bao):
    """Database `orders` with role `orders-ro` (30 s leases, `member_of` a group) and the KV
    secret, made through the API; the agent's policy and AppRole made with the bao CLI, as
    the README's provisioning block does (shorter token TTLs, so token renewal happens too)."""
    group = make_group("bao_orders")
    client.secrets.database.configure(
        name="orders", plugin_name="postgresql-database-plugin", allowed_roles=["orders-ro"],
        connection_url=connection_url(), username=env("MAYFLY_TEST_PG_USER"), password=env("MAYFLY_TEST_PG_PASSWORD"))
    client.write_data("database/roles/orders-ro",
                      data={"db_name": "orders", "member_of": [group], "default_ttl": f"{ROLE_TTL}s", "max_ttl": "10m"})
    bao.run("kv", "put", "secret/orders/api", "key=first-key")

    directory = os.path.join(server.dir, "agent")
    os.makedirs(directory, mode=0o700)
    bao.run("policy", "write", "orders-agent", "-", input=agent_policy())
    bao.run("write", "auth/approle/role/orders-agent", "token_policies=orders-agent", "token_ttl=1m", "token_max_ttl=10m")
    with open(os.path.join(directory, "role_id"), "w") as f:
        f.write(bao.run("read", "-field=role_id", "auth/approle/role/orders-agent/role-id").stdout)
    with open(os.path.join(directory, "secret_id"), "w") as f:
        f.write(bao.run("write", "-f", "-field=secret_id", "auth/approle/role/orders-agent/secret-id").stdout)
    return directory, group


@pytest.fixture
def agent(server, bao, provisioned):
    instance = Agent(bao.binary, server, provisioned[0])
    yield instance
    instance.stop()


def test_agent_renders_a_working_credential(server, bao, client, agent, provisioned):
    group = provisioned[1]
    first = agent.wait_for("rendered credential", agent.rendered(), 60)
    assert stat.S_IMODE(os.stat(agent.env_file).st_mode) == 0o600
    assert first["API_KEY"] == "first-key"
    assert first["MAYFLY_LEASE_ID"].startswith("database/creds/orders-ro/")
    session = login(first["PGUSER"], first["PGPASSWORD"])
    assert session.returncode == 0 and session.stdout.strip() == first["PGUSER"]
    assert admin_sql(f"SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u "
                     f"ON u.oid = m.member WHERE u.rolname = '{first['PGUSER']}' AND g.rolname = '{group}'") == "1"
    lease = bao.json("lease", "lookup", first["MAYFLY_LEASE_ID"])["data"]
    assert lease["renewable"] is True and lease["ttl"] <= ROLE_TTL

    if server.transport != "tls":
        client.sys.revoke_lease(first["MAYFLY_LEASE_ID"])  # the TLS run follows the rest of a lease's life
        return

    # A KV change is rendered within static_secret_render_interval, without a new credential.
    bao.run("kv", "put", "secret/orders/api", "key=second-key")
    second = agent.wait_for("re-rendered KV secret", agent.rendered(lambda v: v["API_KEY"] == "second-key"), 40)
    assert second["PGUSER"] == first["PGUSER"], "a KV change must not fetch a new database credential"

    # The agent renews the lease (at about 2/3 of its TTL): its expiry moves later.
    initial = expiry(lease)

    def renewed():
        current = bao.json("lease", "lookup", first["MAYFLY_LEASE_ID"])["data"]
        return current if (expiry(current) - initial).total_seconds() >= 5 else None
    current = agent.wait_for("lease renewal", renewed, 2 * ROLE_TTL)
    assert current["last_renewal"] is not None and current["renewable"] is True
    valid_until = admin_sql(f"SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles "
                            f"WHERE rolname = '{first['PGUSER']}'")
    assert int(valid_until) >= int(expiry(current).timestamp()), "renewal moves VALID UNTIL with the lease"
    assert can_login(first["PGUSER"], first["PGPASSWORD"])

    # Revoked through the API: the agent's next renewal fails, and it renders a new credential.
    client.sys.revoke_lease(first["MAYFLY_LEASE_ID"])
    assert wait_until_gone(first["PGUSER"])
    third = agent.wait_for("new credential after the revoke",
                           agent.rendered(lambda v: v["PGUSER"] != first["PGUSER"]), 3 * ROLE_TTL)
    assert third["MAYFLY_LEASE_ID"] != first["MAYFLY_LEASE_ID"] and third["API_KEY"] == "second-key"
    assert can_login(third["PGUSER"], third["PGPASSWORD"])
    assert not can_login(first["PGUSER"], first["PGPASSWORD"])
    assert bao.json("lease", "lookup", third["MAYFLY_LEASE_ID"])["data"]["renewable"] is True
