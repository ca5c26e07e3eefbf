"""The bao CLI's everyday commands against a real Mayfly, over TLS and over the Unix socket:
status, kv (with -mount= and in the path form), policies, tokens and AppRole's `write -f`."""


def test_status(bao):
    result = bao.run("status")
    assert "Sealed          false" in result.stdout
    status = bao.json("status")
    assert status["initialized"] is True and status["sealed"] is False and status["t"] == 1 and status["n"] == 1
    assert status["ha_enabled"] is False


def test_kv_mount_form(bao):
    written = bao.json("kv", "put", "-mount=secret", "app", "user=orders", "password=first")
    assert written["data"]["version"] == 1
    read = bao.json("kv", "get", "-mount=secret", "app")
    assert read["data"]["data"] == {"user": "orders", "password": "first"}
    assert read["data"]["metadata"]["version"] == 1
    assert bao.run("kv", "get", "-mount=secret", "-field=password", "app").stdout == "first"

    # patch: the default method is an HTTP PATCH (merge-patch+json); -method=rw reads and writes with cas.
    assert bao.json("kv", "patch", "-mount=secret", "app", "password=second")["data"]["version"] == 2
    assert bao.json("kv", "patch", "-mount=secret", "-method=rw", "app", "extra=x")["data"]["version"] == 3
    assert bao.json("kv", "get", "-mount=secret", "app")["data"]["data"] == {
        "user": "orders", "password": "second", "extra": "x"}
    assert bao.json("kv", "get", "-mount=secret", "-version=1", "app")["data"]["data"]["password"] == "first"

    bao.run("kv", "put", "-mount=secret", "app/nested", "a=1")
    assert bao.json("kv", "list", "-mount=secret", "app") == ["nested"]  # JSON output is the bare key list

    metadata = bao.json("kv", "metadata", "get", "-mount=secret", "app")["data"]
    assert metadata["current_version"] == 3 and metadata["oldest_version"] == 1
    assert sorted(metadata["versions"]) == ["1", "2", "3"]

    assert "Success! Data deleted" in bao.run("kv", "delete", "-mount=secret", "app").stdout
    deleted = bao.json("kv", "get", "-mount=secret", "app")  # 404 with the envelope: the CLI prints the metadata
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"] != ""
    bao.run("kv", "undelete", "-mount=secret", "-versions=3", "app")
    assert bao.json("kv", "get", "-mount=secret", "app")["data"]["data"]["extra"] == "x"


def test_kv_path_form(bao):
    bao.run("kv", "put", "secret/web", "token=t1")
    assert bao.json("kv", "get", "secret/web")["data"]["data"] == {"token": "t1"}
    assert bao.json("kv", "patch", "secret/web", "token=t2")["data"]["version"] == 2
    assert bao.run("kv", "get", "-field=token", "secret/web").stdout == "t2"
    assert sorted(bao.json("kv", "list", "secret/")) == ["app", "app/", "web"]
    assert bao.json("kv", "metadata", "get", "secret/web")["data"]["current_version"] == 2

    bao.run("kv", "delete", "secret/web")
    assert bao.json("kv", "get", "secret/web")["data"]["data"] is None
    bao.run("kv", "undelete", "-versions=2", "secret/web")
    assert bao.run("kv", "get", "-field=token", "secret/web").stdout == "t2"

    bao.run("kv", "metadata", "delete", "secret/web")
    missing = bao.run("kv", "get", "secret/web", check=False)
    assert missing.returncode == 2 and "No value found at secret/data/web" in missing.stderr


def test_policy_write_read(bao):
    policy = 'path "secret/data/web" {\n  capabilities = ["read"]\n}\n'
    assert "Success! Uploaded policy: web-read" in bao.run("policy", "write", "web-read", "-", input=policy).stdout
    assert bao.run("policy", "read", "web-read").stdout.strip() == policy.strip()
    assert "web-read" in bao.run("policy", "list").stdout.split()


def test_token_create_lookup_revoke(bao):
    bao.run("kv", "put", "secret/web", "token=t3")
    created = bao.json("token", "create", "-policy=web-read", "-ttl=10m")["auth"]
    token = created["client_token"]
    assert sorted(created["policies"]) == ["default", "web-read"]
    assert created["lease_duration"] == 600 and created["renewable"] is True

    looked_up = bao.json("token", "lookup", token)["data"]
    assert looked_up["id"] == token and looked_up["accessor"] == created["accessor"]
    assert sorted(looked_up["policies"]) == ["default", "web-read"] and 590 <= looked_up["ttl"] <= 600
    assert bao.json("token", "lookup", token=token)["data"]["id"] == token  # lookup-self
    assert bao.json("token", "lookup", "-accessor", created["accessor"])["data"]["accessor"] == created["accessor"]

    # The child token reads what its policy grants, and nothing else.
    assert bao.run("kv", "get", "-field=token", "secret/web", token=token).stdout == "t3"
    denied = bao.run("kv", "put", "secret/web", "token=no", token=token, check=False)
    assert denied.returncode == 2 and "Code: 403" in denied.stderr

    assert "Success! Revoked token" in bao.run("token", "revoke", token).stdout
    gone = bao.run("token", "lookup", token, check=False)
    assert gone.returncode == 2 and "Code: 403" in gone.stderr and "bad token" in gone.stderr
    assert bao.run("kv", "get", "secret/web", token=token, check=False).returncode == 2


def test_approle_write_force(bao):
    """`bao write -f` sends the JSON body `null` (issue 12 finding 2): generating a secret id
    with no fields must work."""
    bao.run("write", "auth/approle/role/cli", "token_policies=web-read", "token_ttl=5m")
    role_id = bao.run("read", "-field=role_id", "auth/approle/role/cli/role-id").stdout
    generated = bao.json("write", "-f", "auth/approle/role/cli/secret-id")["data"]
    assert generated["secret_id"] and generated["secret_id_accessor"] and generated["secret_id_ttl"] == 0
    login = bao.json("write", "auth/approle/login", f"role_id={role_id}", f"secret_id={generated['secret_id']}",
                     token="")["auth"]
    assert sorted(login["policies"]) == ["default", "web-read"] and login["lease_duration"] == 300
    assert bao.json("token", "lookup", token=login["client_token"])["data"]["meta"] == {"role_name": "cli"}
