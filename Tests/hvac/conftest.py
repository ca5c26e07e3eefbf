"""Fixtures for the hvac (PyPI) compatibility suite: a real `mayfly server` per transport."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

import hvac
import pytest
import requests
import requests_unixsocket


def _binary():
    path = os.environ.get("MAYFLY_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.exit("MAYFLY_BIN must point at the built mayfly binary (scripts/test sets it)", returncode=2)
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_certificates(directory):
    def run(*args):
        subprocess.run(args, check=True, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mayfly-hvac-ca",
        "-keyout", "ca.key", "-out", "ca.pem")

    def signed(name, common_name, subject_alt_name):
        """NAME.key and NAME.pem, signed by the CA, with the subjectAltName given."""
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + common_name,
            "-keyout", name + ".key", "-out", name + ".csr")
        with open(os.path.join(directory, name + ".ext"), "w") as f:
            f.write("subjectAltName=" + subject_alt_name + "\n")
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem")

    signed("server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
    # A client certificate for mTLS (auth/cert/login), bound in the config below.
    signed("client", "billing", "URI:spiffe://prod/billing")


class Server:
    """A mayfly server with a Unix listener and a TLS listener, plus clients for one transport."""

    def __init__(self, transport):
        self.transport = transport
        self.dir = tempfile.mkdtemp(prefix="mf-hvac-", dir="/tmp")
        os.makedirs(os.path.join(self.dir, "run"), mode=0o750)
        os.chmod(os.path.join(self.dir, "run"), 0o750)
        _make_certificates(self.dir)
        self.socket = os.path.join(self.dir, "run", "mayfly.sock")
        self.port = _free_port()
        self.ca = os.path.join(self.dir, "ca.pem")
        self.log_path = os.path.join(self.dir, "server.log")
        config = os.path.join(self.dir, "mayfly.hcl")
        with open(config, "w") as f:
            f.write(f'''
storage "sqlite" {{ path = "{self.dir}/data/mayfly.db" }}
listener "unix"  {{ path = "{self.socket}" }}
listener "tcp"   {{ address = "127.0.0.1:{self.port}"  tls_cert_file = "{self.dir}/server.pem"  tls_key_file = "{self.dir}/server.key"
                    tls_client_ca_file = "{self.dir}/ca.pem" }}
bind "cert:spiffe://prod/billing" {{ policies = ["billing-app"] }}
log_level = "trace"
''')
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([_binary(), "server", "--config", config], stdout=self.log, stderr=self.log)
        self._wait_ready()

    @property
    def url(self):
        if self.transport == "unix":
            return "http+unix://" + urllib.parse.quote(self.socket, safe="")
        return f"https://127.0.0.1:{self.port}"

    def session(self):
        return requests_unixsocket.Session() if self.transport == "unix" else requests.Session()

    def request(self, method, path, **kwargs):
        """One raw request; TLS requests verify against the test CA (passed per request, since
        REQUESTS_CA_BUNDLE in the environment would override a session-level setting)."""
        if self.transport == "tls":
            kwargs.setdefault("verify", self.ca)
        return self.session().request(method, self.url + path, **kwargs)

    def client(self, token=None):
        if self.transport == "unix":
            return hvac.Client(url=self.url, token=token, session=self.session())
        return hvac.Client(url=self.url, token=token, verify=self.ca)

    def _wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.request("GET", "/v1/sys/health", timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        with open(self.log_path) as f:
            pytest.fail("mayfly did not start:\n" + f.read())

    def server_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["tls", "unix"])
def server(request):
    instance = Server(request.param)
    yield instance
    instance.stop()
    instance.cleanup()


def initialize(server):
    """Initialises (one share) and unseals `server` through the API; the root token."""
    bootstrap = server.client()
    result = bootstrap.sys.initialize(secret_shares=1, secret_threshold=1)
    bootstrap.sys.submit_unseal_keys(result["keys"])
    return result["root_token"]


@pytest.fixture(scope="module")
def client(server):
    """A root-token client of the module's server, initialised (one share) and unsealed."""
    return server.client(token=initialize(server))
