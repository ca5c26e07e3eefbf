"""hvac against a real Mayfly over TLS and over the Unix socket: init, unseal, health,
authentication, KV v2, seal; and the raw wire rules hvac depends on.

The steps share one server per transport and run in file order (pytest keeps it)."""
import hvac
import hvac.exceptions
import pytest

STATE = {}
SECRET = "hvac-secret-value-9f1c"


def root_client(server):
    return server.client(token=STATE[server.transport]["root"])


def test_initialize_and_unseal(server):
    client = server.client()
    assert client.sys.is_initialized() is False
    health = client.sys.read_health_status(method="HEAD")
    assert health.status_code == 501
    result = client.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(result["keys"]) == 5 and len(result["keys_base64"]) == 5
    assert result["root_token"].startswith("hvs.")
    STATE[server.transport] = {"root": result["root_token"], "keys": result["keys"], "keys_b64": result["keys_base64"]}
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is True
    assert client.sys.read_health_status(method="HEAD").status_code == 503
    # Two base64 shares and one hex share: both encodings are accepted.
    status = client.sys.submit_unseal_keys(result["keys_base64"][:2] + result["keys"][2:3])
    assert status["sealed"] is False
    assert client.sys.is_sealed() is False


def test_health(server):
    client = server.client()
    head = client.sys.read_health_status(method="HEAD")
    assert head.status_code == 200
    assert head.text == ""
    body = client.sys.read_health_status(method="GET")
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    assert isinstance(body["server_time_utc"], int)
    assert client.sys.read_health_status(method="GET", standby_ok=True, active_code=299).status_code == 299
    status = client.sys.read_seal_status()
    assert status["t"] == 3 and status["n"] == 5 and status["progress"] == 0


def test_is_authenticated(server):
    assert root_client(server).is_authenticated() is True
    assert server.client(token="hvs.not-a-real-token").is_authenticated() is False
    assert server.client().is_authenticated() is False


def test_write_with_a_null_body(server):
    """`vault write -f` sends the JSON body `null`: no data, as Vault takes it (issue 12, finding 2)."""
    client = root_client(server)
    client.auth.approle.create_or_update_approle("force", token_policies=["default"])
    # hvac's own adapter, with the body the Vault CLI sends for -f.
    response = client.adapter.post("/v1/auth/approle/role/force/secret-id", data="null")
    assert response["data"]["secret_id"]
    created = client.adapter.post("/v1/auth/token/create", data="null")
    assert created["auth"]["client_token"]


def test_mounts_auth_methods_and_audit_devices(server):
    client = root_client(server)
    mounts = client.sys.list_mounted_secrets_engines()
    assert mounts["data"]["secret/"]["type"] == "kv" and mounts["data"]["secret/"]["options"]["version"] == "2"
    assert mounts["data"]["database/"]["type"] == "database"
    assert client.sys.list_auth_methods()["data"]["approle/"]["type"] == "approle"
    assert client.sys.list_enabled_audit_devices()["data"] == {}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="fixed"):
        client.sys.enable_secrets_engine("kv", path="other-kv")


def test_kv_write_with_and_without_cas(server):
    kv = root_client(server).secrets.kv.v2
    first = kv.create_or_update_secret("app/db", secret={"user": "orders", "password": SECRET})
    assert first["data"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("app/db", secret={"user": "x"}, cas=0)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret("app/db", secret={"user": "x"}, cas=7)
    second = kv.create_or_update_secret("app/db", secret={"user": "orders2", "password": SECRET}, cas=1)
    assert second["data"]["version"] == 2
    kv.create_or_update_secret("app/nested/deep", secret={"k": "v"}, cas=0)


def test_kv_read_latest_and_version(server):
    kv = root_client(server).secrets.kv.v2
    latest = kv.read_secret_version("app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"user": "orders2", "password": SECRET}
    assert latest["data"]["metadata"]["version"] == 2
    v1 = kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)
    assert v1["data"]["data"]["user"] == "orders"
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("app/missing", raise_on_deleted_version=True)


def test_kv_patch(server):
    kv = root_client(server).secrets.kv.v2
    patched = kv.patch("app/db", secret={"port": "5432"})
    assert patched["data"]["version"] == 3
    latest = kv.read_secret_version("app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"user": "orders2", "password": SECRET, "port": "5432"}


def test_kv_list(server):
    kv = root_client(server).secrets.kv.v2
    assert kv.list_secrets("app")["data"]["keys"] == ["db", "nested/"]
    assert kv.list_secrets("")["data"]["keys"] == ["app/"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets("nothing-here")


def test_kv_delete_undelete_destroy(server):
    kv = root_client(server).secrets.kv.v2
    kv.delete_latest_version_of_secret("app/db")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("app/db", raise_on_deleted_version=True)
    deleted = kv.read_secret_version("app/db", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    kv.undelete_secret_versions("app/db", versions=[3])
    assert kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"]["port"] == "5432"
    kv.destroy_secret_versions("app/db", versions=[1])
    metadata = kv.read_secret_metadata("app/db")["data"]
    assert metadata["current_version"] == 3
    assert metadata["versions"]["1"]["destroyed"] is True
    assert set(metadata["versions"].keys()) == {"1", "2", "3"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)


def test_kv_delete_metadata_and_all_versions(server):
    kv = root_client(server).secrets.kv.v2
    kv.delete_metadata_and_all_versions("app/db")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("app/db", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata("app/db")


def test_tokens(server):
    client = root_client(server)
    created = client.auth.token.create(policies=["default"], ttl="1h")
    child = server.client(token=created["auth"]["client_token"])
    me = child.auth.token.lookup_self()["data"]
    assert me["policies"] == ["default"] and me["renewable"] is True and 3500 < me["ttl"] <= 3600
    assert child.auth.token.renew_self(increment="30m")["auth"]["lease_duration"] == 1800
    with pytest.raises(hvac.exceptions.Forbidden):
        child.secrets.kv.v2.read_secret_version("app/nested/deep", raise_on_deleted_version=True)
    child.auth.token.revoke_self()
    assert child.is_authenticated() is False


def test_token_roles(server):
    client = root_client(server)
    client.auth.token.create_or_update_role("hvac-role", allowed_policies=["default"], orphan=True,
                                             token_explicit_max_ttl="1h")
    assert client.auth.token.read_role("hvac-role")["data"]["orphan"] is True
    assert "hvac-role" in client.auth.token.list_roles()["data"]["keys"]
    created = client.auth.token.create(role_name="hvac-role", ttl="2h")["auth"]
    assert created["orphan"] is True and created["policies"] == ["default"] and created["lease_duration"] == 3600
    client.auth.token.delete_role("hvac-role")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.token.create(role_name="hvac-role")


def test_wire_rules(server):
    token = STATE[server.transport]["root"]
    ok = server.request("GET", "/v1/secret/data/app/nested/deep", headers={"X-Vault-Token": token})
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json"
    assert set(ok.json().keys()) == {"request_id", "lease_id", "renewable", "lease_duration", "data",
                                     "wrap_info", "warnings", "auth"}
    denied = server.request("GET", "/v1/secret/data/app/nested/deep", headers={"X-Vault-Token": "hvs.bad"})
    assert denied.status_code == 403
    assert denied.headers["Content-Type"] == "application/json"
    assert list(denied.json().keys()) == ["errors"]
    missing = server.request("GET", "/v1/secret/data/nope", headers={"X-Vault-Token": token})
    assert missing.status_code == 404 and missing.json() == {"errors": []}
    empty = server.request("LIST", "/v1/secret/metadata/empty/", headers={"X-Vault-Token": token})
    assert empty.status_code == 404
    bad = server.request("POST", "/v1/secret/data/x", data="{not json", headers={"X-Vault-Token": token})
    assert bad.status_code == 400 and "errors" in bad.json()


def test_seal(server):
    client = root_client(server)
    client.sys.seal()
    assert client.sys.is_sealed() is True
    with pytest.raises(hvac.exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version("app/nested/deep", raise_on_deleted_version=True)
    assert client.sys.read_health_status(method="HEAD").status_code == 503


def test_no_secret_in_server_log(server):
    log = server.server_log()
    state = STATE[server.transport]
    assert "request" in log  # trace logging is on, so this check is meaningful
    for secret in [SECRET, state["root"], state["root"][4:]] + state["keys"] + state["keys_b64"]:
        assert secret not in log
