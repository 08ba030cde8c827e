"""Trust defaults: sources need a host, outgoing TLS verifies its peer (dcmtk storescp over TLS as the peer),
the DICOM port's default interface, and the modes of what lands under data_dir."""
from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiws.config import config_from_mapping
from aiws.errors import ConfigError
from aiws.netsettings import scp_settings
from certs import Certificate, issue, make_ca
from factories import make_ct_series
from pacs_bridge.errors import SendError
from pacs_bridge.sender import echo, send_files
from pacs_bridge.settings import Destination, SenderSettings, TlsSettings
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for


# -- configuration ------------------------------------------------------------------------------------------
def _dicom(**dicom: object) -> dict[str, object]:
    return {"dicom": dicom}


@pytest.mark.parametrize("source", [{"ae_title": "CT1"}, {"ae_title": "CT1", "host": ""},
                                    {"ae_title": "CT1", "host": "  "}])
def test_a_source_without_a_host_is_refused(source: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"dicom\.sources\.0: source CT1: no host; .*any_host = true"):
        config_from_mapping(_dicom(sources=[source]))


def test_any_host_must_be_written_and_cannot_come_with_a_host() -> None:
    config = config_from_mapping(_dicom(sources=[{"ae_title": "CT1", "any_host": True}]))
    assert config.dicom.sources[0].host is None and config.dicom.sources[0].any_host
    with pytest.raises(ConfigError, match="host and any_host = true contradict"):
        config_from_mapping(_dicom(sources=[{"ae_title": "CT1", "host": "10.0.0.1", "any_host": True}]))


def test_tls_destination_needs_a_ca_or_verify_false(tmp_path: Path) -> None:
    dest = {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.9", "port": 2762, "tls": True}
    tls = {"cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem")}
    with pytest.raises(ConfigError, match=r"destination pacs: tls = true needs \[dicom.tls\]"):
        config_from_mapping(_dicom(destinations=[dest]))
    with pytest.raises(ConfigError, match="destination pacs: tls = true verifies the peer against .*ca_file"):
        config_from_mapping(_dicom(tls=tls, destinations=[dest]))
    unverified = config_from_mapping(_dicom(tls=tls, destinations=[{**dest, "verify": False}]))
    assert not unverified.dicom.destinations[0].verify
    with_ca = config_from_mapping(_dicom(tls={**tls, "ca_file": str(tmp_path / "ca.pem")}, destinations=[dest]))
    assert with_ca.dicom.destinations[0].verify


def test_dicom_port_listens_on_the_http_interface_unless_told() -> None:
    assert scp_settings(config_from_mapping({})).host == "127.0.0.1"
    assert scp_settings(config_from_mapping({"http": {"host": "10.1.2.5"}})).host == "10.1.2.5"
    assert scp_settings(config_from_mapping({"http": {"host": "10.1.2.5"}, "dicom": {"host": "0.0.0.0"}})).host \
        == "0.0.0.0"


# -- outgoing TLS against dcmtk storescp ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    other = make_ca(folder / "other", "another-ca")
    return {"ca": ca, "other_ca": other, "sink": issue(ca, folder, "sink"), "aiws": issue(ca, folder, "aiws"),
            "sink_elsewhere": issue(ca, folder, "sink-elsewhere", ip="127.0.0.2")}


class TlsSink:
    """dcmtk storescp over TLS, requiring a client certificate signed by the test CA."""

    def __init__(self, workdir: Path, cert: Certificate, ca: Certificate) -> None:
        self.port = free_port()
        self.out = workdir / "received"
        self.out.mkdir(parents=True)
        cmd = ["storescp", "-aet", "SINK", "+tls", str(cert.key), str(cert.cert), "+cf", str(ca.cert),
               "-od", str(self.out), str(self.port)]
        self.log = open(workdir / "storescp.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=DCMTK_ENV)
        wait_for(self._listening, timeout=30, what="storescp listening")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"storescp exited with {self.proc.returncode}")
        out = subprocess.run(["ss", "-ltn", f"sport = :{self.port}"], capture_output=True, text=True)
        return f":{self.port}" in out.stdout

    def received(self) -> list[Path]:
        return sorted(p for p in self.out.iterdir() if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def sink(tmp_path: Path, pki: dict[str, Certificate]) -> Iterator[TlsSink]:
    s = TlsSink(tmp_path / "sink", pki["sink"], pki["ca"])
    yield s
    s.stop()


def _sender(pki: dict[str, Certificate], ca: str | None) -> SenderSettings:
    ours = pki["aiws"]
    return SenderSettings(ae_title="AIWS", connect_timeout_s=10, dimse_timeout_s=30,
                          tls=TlsSettings(ours.cert, ours.key, pki[ca].cert if ca else None))


def test_tls_send_without_a_ca_is_refused_unless_verify_false(tmp_path: Path, sink: TlsSink, pki: dict) -> None:
    files = make_ct_series(tmp_path / "ct", n_slices=2, rows=16, cols=16)
    dest = Destination("sink", "SINK", "127.0.0.1", sink.port, tls=True)
    with pytest.raises(SendError, match="TLS without a ca_file to verify the peer against"):
        send_files(dest, files, _sender(pki, None))
    assert sink.received() == []
    unverified = Destination("sink", "SINK", "127.0.0.1", sink.port, tls=True, verify=False)
    assert send_files(unverified, files, _sender(pki, None)).sent == 2
    assert len(sink.received()) == 2


def test_tls_send_verifies_the_peer_against_the_ca(tmp_path: Path, sink: TlsSink, pki: dict) -> None:
    files = make_ct_series(tmp_path / "ct", n_slices=2, rows=16, cols=16)
    dest = Destination("sink", "SINK", "127.0.0.1", sink.port, tls=True)
    assert send_files(dest, files, _sender(pki, "ca")).sent == 2
    assert len(sink.received()) == 2
    with pytest.raises(SendError, match="does its certificate verify"):
        echo(dest, _sender(pki, "other_ca"))  # signed by a CA we do not trust


def test_tls_send_checks_that_the_certificate_names_the_host(tmp_path: Path, pki: dict) -> None:
    wrong = TlsSink(tmp_path / "sink", pki["sink_elsewhere"], pki["ca"])  # a valid certificate for 127.0.0.2
    try:
        dest = Destination("sink", "SINK", "127.0.0.1", wrong.port, tls=True)
        with pytest.raises(SendError, match="does its certificate verify"):
            echo(dest, _sender(pki, "ca"))
        assert echo(Destination("sink", "SINK", "127.0.0.1", wrong.port, tls=True, verify=False),
                    _sender(pki, "ca")) > 0
    finally:
        wrong.stop()


# -- against the running service ----------------------------------------------------------------------------
CONFIG = """
[dicom]
host = "127.0.0.1"
port = {{dicom_port}}
[dicom.tls]
cert_file = "{cert}"
key_file = "{key}"
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[http]
port = {{http_port}}
[storage]
data_dir = "{{data_dir}}"
min_free_mb = 1
"""


@pytest.fixture
def aiws(tmp_path: Path, pki: dict[str, Certificate]) -> Iterator[AiwsProcess]:
    (tmp_path / "var").mkdir(mode=0o755)  # made before, open to others: the service closes it
    text = CONFIG.format(cert=pki["aiws"].cert, key=pki["aiws"].key)
    proc = AiwsProcess(tmp_path, text, env={"AIWS_WORKERS": "0"}).start()
    yield proc
    proc.stop()


@pytest.mark.network
def test_service_config_api_sources_and_tls_destinations(aiws: AiwsProcess, sink: TlsSink) -> None:
    headers = {"Authorization": "Bearer test-token"}
    hostless = httpx.post(f"{aiws.url}/api/config/sources", json={"ae_title": "CT9"}, headers=headers, timeout=30)
    assert hostless.status_code == 422 and "any_host" in hostless.text
    assert aiws.api("/api/config/sources", "POST", json={"ae_title": "CT9", "any_host": True})["any_host"]

    base = {"ae_title": "SINK", "host": "127.0.0.1", "port": sink.port, "tls": True}
    aiws.api("/api/config/destinations", "POST", json={"name": "strict", **base})
    aiws.api("/api/config/destinations", "POST", json={"name": "open", **base, "verify": False})
    shown = {d["name"]: d["verify"] for d in aiws.api("/api/config/destinations")}
    assert shown == {"strict": True, "open": False}
    page = httpx.get(f"{aiws.url}/console/status", headers={"Authorization": "Bearer test-token"}, timeout=30).text
    assert "NOT verified (verify = false)" in page and "peer verified" in page

    strict = aiws.api("/api/config/destinations/strict/echo", "POST")
    assert not strict["ok"] and "ca_file" in strict["error"]
    assert aiws.api("/api/config/destinations/open/echo", "POST")["ok"]


@pytest.mark.network
def test_data_dir_is_closed_to_others_after_receiving(tmp_path: Path, aiws: AiwsProcess, pki: dict) -> None:
    files = make_ct_series(tmp_path / "ct", n_slices=2, rows=16, cols=16)
    ours, ca = pki["aiws"], pki["ca"]
    out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files,
                   "+tls", str(ours.key), str(ours.cert), "+cf", str(ca.cert), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    kept = list(aiws.data_dir.rglob("*"))
    assert len([p for p in kept if p.suffix == ".dcm"]) == 2 and (aiws.data_dir / "aiws.db").exists()
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in [aiws.data_dir, *kept]}
    assert {name: oct(m) for name, m in modes.items() if m & 0o077} == {}
    assert "without ca_file: clients are not authenticated" in aiws.log()


RESULTS_CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.mark.network
def test_results_written_by_a_worker_are_closed_to_others(tmp_path: Path) -> None:
    aiws = AiwsProcess(tmp_path, RESULTS_CONFIG, env={"AIWS_WORKERS": "1"}).start()
    try:
        files = make_ct_series(tmp_path / "ct", n_slices=2, rows=16, cols=16)
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: [j for j in aiws.api("/api/jobs") if j["state"] == "done"], timeout=120, what="a done job")
        results = list((aiws.data_dir / "outbox").rglob("*.dcm"))
        assert results  # the worker process wrote the echo summary
        modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in aiws.data_dir.rglob("*")}
        assert {name: oct(m) for name, m in modes.items() if m & 0o077} == {}
    finally:
        aiws.stop()
