"""hvac's AppRole and certificate logins against a real Mayfly (issue 4), over TLS and the Unix socket."""
import os

import hvac
import hvac.exceptions
import pytest


def test_approle_login(server, client):
    client.auth.approle.create_or_update_approle("orders", token_policies=["orders-app"], token_ttl="10m",
                                                 secret_id_num_uses=1)
    assert client.auth.approle.read_role("orders")["data"]["token_policies"] == ["orders-app"]
    assert "orders" in client.auth.approle.list_roles()["data"]["keys"]
    role_id = client.auth.approle.read_role_id("orders")["data"]["role_id"]
    generated = client.auth.approle.generate_secret_id("orders")["data"]
    assert generated["secret_id_num_uses"] == 1
    looked_up = client.auth.approle.read_secret_id("orders", generated["secret_id"])["data"]
    assert looked_up["secret_id_accessor"] == generated["secret_id_accessor"]

    app = server.client()
    auth = app.auth.approle.login(role_id=role_id, secret_id=generated["secret_id"])["auth"]
    assert auth["policies"] == ["default", "orders-app"] and auth["lease_duration"] == 600
    assert app.token == auth["client_token"] and app.is_authenticated()
    assert app.auth.token.lookup_self()["data"]["meta"] == {"role_name": "orders"}

    # One use only: the same secret id is refused now, like a guessed one.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        server.client().auth.approle.login(role_id=role_id, secret_id=generated["secret_id"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing secret_id"):
        server.client().auth.approle.login(role_id=role_id)

    # A destroyed secret id is refused.
    second = client.auth.approle.generate_secret_id("orders")["data"]["secret_id"]
    client.auth.approle.destroy_secret_id("orders", second)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        server.client().auth.approle.login(role_id=role_id, secret_id=second)
    client.auth.approle.delete_role("orders")


def test_cert_login(server, client):
    if server.transport != "tls":
        # The Unix socket has peer credentials instead; there is no certificate to log in with.
        response = server.request("POST", "/v1/auth/cert/login", json={})
        assert response.status_code == 400 and "no client certificate" in response.json()["errors"][0]
        return
    cert = (os.path.join(server.dir, "client.pem"), os.path.join(server.dir, "client.key"))
    app = hvac.Client(url=server.url, verify=server.ca, cert=cert)
    auth = app.auth.cert.login(cert_pem=cert[0], key_pem=cert[1])["auth"]
    assert auth["policies"] == ["billing-app", "default"]
    assert auth["metadata"]["uri_san"] == "spiffe://prod/billing"
    assert app.token == auth["client_token"] and app.is_authenticated()
    # Without a client certificate there is nothing to log in with.
    response = server.request("POST", "/v1/auth/cert/login", json={})
    assert response.status_code == 400 and "no client certificate" in response.json()["errors"][0]
