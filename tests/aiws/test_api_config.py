"""HTTP API: configuration CRUD (401/404/409/422), live apply, persistence, listings.

One service serves the module (``live_config``): what a test changed is put back through the API after it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live_config import network_state, restore_network
from peers import AiwsProcess, echoscu, free_port

pytestmark = pytest.mark.network

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "ECHOSCU"
host = "127.0.0.1"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiwsProcess]:
    proc = AiwsProcess(tmp_path_factory.mktemp("api_config"), CONFIG, env={"AIWS_WORKERS": "0"}).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def aiws(shared: AiwsProcess) -> Iterator[AiwsProcess]:
    """The module's service with the configuration file's AE, sources and destinations (put back after the test)."""
    was = network_state(shared)
    yield shared
    restore_network(shared, was)


def _call(aiws: AiwsProcess, method: str, path: str, token: str | None = "test-token", **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{aiws.url}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def test_changes_need_the_admin_token(aiws: AiwsProcess) -> None:
    body = {"ae_title": "NEWPACS"}
    assert _call(aiws, "POST", "/api/config/sources", token=None, json=body).status_code == 401
    assert _call(aiws, "POST", "/api/config/sources", token="wrong", json=body).status_code == 401
    assert _call(aiws, "GET", "/api/config/sources", token=None).status_code == 401
    assert _call(aiws, "GET", "/api/config/sources").status_code == 200


def test_source_crud_applies_live_and_persists(aiws: AiwsProcess) -> None:
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "NEWPACS").returncode != 0
    r = _call(aiws, "POST", "/api/config/sources", json={"ae_title": "NEWPACS", "host": "127.0.0.1"})
    assert r.status_code == 201
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "NEWPACS").returncode == 0  # no restart
    dup = _call(aiws, "POST", "/api/config/sources", json={"ae_title": "NEWPACS", "host": "127.0.0.1"})
    assert dup.status_code == 409

    aiws.stop()
    aiws.start()
    assert any(s["ae_title"] == "NEWPACS" for s in _call(aiws, "GET", "/api/config/sources").json())
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "NEWPACS").returncode == 0

    assert _call(aiws, "DELETE", "/api/config/sources/NEWPACS").status_code == 204
    assert _call(aiws, "DELETE", "/api/config/sources/NEWPACS").status_code == 404
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "NEWPACS").returncode != 0
    audit = _call(aiws, "GET", "/api/audit").json()
    assert [a["action"] for a in audit if a["action"].startswith("source")][:2] == ["source removed", "source added"]


@pytest.mark.parametrize("body,field", [
    ({"name": "p", "ae_title": "X", "host": "127.0.0.1", "port": 70000}, "port"),
    ({"name": "p", "ae_title": "A\\B", "host": "127.0.0.1", "port": 104}, "ae_title"),
    ({"name": "bad name!", "ae_title": "X", "host": "127.0.0.1", "port": 104}, "name"),
    ({"name": "p", "ae_title": "X", "port": 104}, "host"),
    ({"name": "p", "ae_title": "X", "host": "h", "port": 104, "colour": "red"}, "colour"),
])
def test_bad_destination_gets_422_naming_the_field(aiws: AiwsProcess, body: dict, field: str) -> None:
    r = _call(aiws, "POST", "/api/config/destinations", json=body)
    assert r.status_code == 422
    assert any(field in [str(p) for p in err["loc"]] for err in r.json()["detail"])


def test_destination_crud_and_echo(aiws: AiwsProcess, tmp_path: Path) -> None:
    import subprocess

    from peers import DCMTK_ENV

    port = free_port()
    body = {"name": "pacs", "ae_title": "SINK", "host": "127.0.0.1", "port": port}
    assert _call(aiws, "POST", "/api/config/destinations", json=body).status_code == 201
    assert _call(aiws, "POST", "/api/config/destinations", json=body).status_code == 409
    down = _call(aiws, "POST", "/api/config/destinations/pacs/echo").json()
    assert down["ok"] is False and "pacs" in down["error"]
    sink = subprocess.Popen(["storescp", "-aet", "SINK", str(port)], env=DCMTK_ENV)
    try:
        import time

        time.sleep(0.3)
        up = _call(aiws, "POST", "/api/config/destinations/pacs/echo").json()
        assert up["ok"] is True and up["round_trip_ms"] > 0
    finally:
        sink.terminate()
        sink.wait()
    changed = {**body, "port": port + 1}
    assert _call(aiws, "PUT", "/api/config/destinations/pacs", json=changed).json()["port"] == port + 1
    assert _call(aiws, "PUT", "/api/config/destinations/other", json={**changed, "name": "other"}).status_code == 404
    assert _call(aiws, "POST", "/api/config/destinations/nope/echo").status_code == 404
    assert _call(aiws, "DELETE", "/api/config/destinations/pacs").status_code == 204
    assert _call(aiws, "GET", "/api/config/destinations").json() == []


def test_local_ae_change_applies_live(aiws: AiwsProcess) -> None:
    assert _call(aiws, "PUT", "/api/config/ae", json={"ae_title": "AIWS2"}).json()["ae_title"] == "AIWS2"
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS2", "ECHOSCU").returncode == 0
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU").returncode != 0
    r = _call(aiws, "PUT", "/api/config/ae", json={"ae_title": "way-too-long-ae-title"})
    assert r.status_code == 422 and "ae_title" in r.text


def test_listings_and_pages(aiws: AiwsProcess) -> None:
    assert _call(aiws, "GET", "/health").json()["ae_title"] == "AIWS"
    for path in ("/api/studies", "/api/jobs", "/api/sends", "/api/associations"):
        assert _call(aiws, "GET", path).json() == [] or path == "/api/associations"
    assert _call(aiws, "GET", "/api/studies/1.2.3").status_code == 404
    assert _call(aiws, "GET", "/api/jobs?state=bogus").status_code == 422
    assert "AIWS" in _call(aiws, "GET", "/console/status").text
    assert "aiws_instances" in _call(aiws, "GET", "/metrics").text
