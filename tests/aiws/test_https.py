"""HTTPS by configuration ([http] tls_cert, tls_key), HSTS, TrustedHost and the security headers, against a real
``aiws serve`` with a certificate of the test CA (tests/certs.py, made with openssl)."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aiws.api import accounts
from aiws.api.auth import Role
from aiws.ledger import Ledger
from certs import Certificate, issue, make_ca
from peers import AiwsProcess, free_port

pytestmark = pytest.mark.network

PASSWORD = "console-pass-1234"
CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[http]
host = "127.0.0.1"
port = {http_port}
tls_cert = "%(cert)s"
tls_key = "%(key)s"
trusted_hosts = ["127.0.0.1", "aiws.test"]
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@dataclass
class HttpsAiws(AiwsProcess):
    """``aiws serve`` over HTTPS: the readiness check and :attr:`url` use https and the test CA."""

    ca: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"aiws exited: {self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", verify=_ctx(self.ca), timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def _ctx(ca: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certificate, Certificate]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return ca, issue(ca, folder, "aiws-https")


@pytest.fixture(scope="module")
def aiws(tmp_path_factory: pytest.TempPathFactory, pki: tuple[Certificate, Certificate]) -> Iterator[HttpsAiws]:
    """One service for the module's three tests (each only reads, or signs in as alice)."""
    ca, server = pki
    proc = HttpsAiws(tmp_path_factory.mktemp("https"), CONFIG % {"cert": server.cert, "key": server.key}, env={"AIWS_WORKERS": "0"},
                     ca=ca.cert)
    ledger = Ledger(proc.data_dir / "aiws.db")
    accounts.create_account(ledger, "alice", Role.RADIOLOGIST, PASSWORD)
    ledger.close()
    proc.start()
    yield proc
    proc.stop()


def test_https_with_hsts_and_security_headers(aiws: HttpsAiws) -> None:
    r = httpx.get(f"{aiws.url}/health", verify=_ctx(aiws.ca), timeout=30)
    assert r.status_code == 200 and r.json()["status"] in ("ok", "degraded")
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    page = httpx.get(f"{aiws.url}/console/login", verify=_ctx(aiws.ca), timeout=30)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "http" not in csp  # no other origin
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the HTTPS port gets no answer
        httpx.get(f"http://127.0.0.1:{aiws.http_port}/health", timeout=10)
    with pytest.raises(httpx.ConnectError):  # the certificate is checked: not trusted without the test CA
        httpx.get(f"{aiws.url}/health", timeout=10)


def test_session_cookie_is_secure_over_https(aiws: HttpsAiws) -> None:
    r = httpx.post(f"{aiws.url}/console/login", data={"username": "alice", "password": PASSWORD},
                   verify=_ctx(aiws.ca), timeout=30)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_wrong_host_header_answers_400(aiws: HttpsAiws) -> None:
    ok = httpx.get(f"{aiws.url}/health", headers={"Host": "aiws.test"}, verify=_ctx(aiws.ca), timeout=30)
    assert ok.status_code == 200
    r = httpx.get(f"{aiws.url}/health", headers={"Host": "evil.example"}, verify=_ctx(aiws.ca), timeout=30)
    assert r.status_code == 400 and "Invalid host header" in r.text


def test_bad_http_certificate_exits_2_naming_it(tmp_path: Path, pki: tuple[Certificate, Certificate]) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    _, server = pki
    cfg = tmp_path / "aiws.toml"
    cfg.write_text((CONFIG % {"cert": garbage, "key": server.key}).format(
        dicom_port=free_port(), http_port=free_port(), data_dir=tmp_path / "var"))
    env = {**os.environ, "AIWS_ADMIN_TOKEN": "test-token", "AIWS_WORKERS": "0"}
    run = subprocess.run([str(Path(sys.executable).parent / "aiws"), "serve", "--config", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 2 and "Traceback" not in out, out
    assert f"http: tls_cert {garbage} with tls_key {server.key} cannot be loaded" in out
