"""Console pages /console/network and /console/rules of a real ``aiws serve``.

HTTP checks with API tokens (forms, refusals shown next to their field, roles), then in a real headless
Chromium: a destination added on the page pointing at a real echo peer (dcmtk ``storescp``) and echoed from
the page; a route edited on the page and tested on an uploaded file.

One service serves the module; after each test what it changed (local AE, sources, destinations, routing rules)
is put back as the configuration file had it, through the API, so each test starts from the file's configuration.
The rules' version goes on counting across tests: a test reads it first and expects the next.
"""
from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_helpers import Console, start_console
from pydicom import dcmread
from pydicom.uid import generate_uid
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from aiws.api.auth import Role
from factories import make_ct_series
from live_config import network_state, restore_network, rules_version
from peers import DCMTK_ENV, free_port, storescu, wait_for

pytestmark = pytest.mark.network

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
[[dicom.destinations]]
name = "pacs"
ae_title = "PACS"
host = "127.0.0.1"
port = 4242
[study]
quiet_seconds = 0.3
[[routes]]
pipeline = "echo_summary"
send_to = ["pacs"]
[routes.match]
Modality = "^CT$"
SliceThickness = [0, 3]
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


class Service:
    """The console's service (with a route and a destination) and requests with a role's API token."""

    def __init__(self, console: Console) -> None:
        self.console, self.proc = console, console.proc

    def get(self, path: str, role: str = "admin") -> httpx.Response:
        return httpx.get(f"{self.proc.url}{path}", headers=self.console.headers(role), timeout=60,
                         follow_redirects=True)

    def post(self, path: str, data: dict[str, str], role: str = "admin", **kw: object) -> httpx.Response:
        return httpx.post(f"{self.proc.url}{path}", headers=self.console.headers(role), data=data, timeout=60,
                          **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    console = start_console(tmp_path_factory.mktemp("console_network"), CONFIG)
    try:
        yield Service(console)
    finally:
        console.stop()


@pytest.fixture
def service(shared_service: Service) -> Iterator[Service]:
    """The module's service as its configuration file set it up; what the test changed is put back after it."""
    was = network_state(shared_service.proc)
    yield shared_service
    restore_network(shared_service.proc, was)


@pytest.fixture
def echo_peer() -> Iterator[int]:
    """dcmtk's storescp as the destination answering C-ECHO."""
    port = free_port()
    peer = subprocess.Popen(["storescp", "-aet", "SINK", str(port)], env=DCMTK_ENV)
    yield port
    peer.terminate()
    peer.wait()


def _by_id(html: str, element_id: str) -> str:
    """The text of the element with *element_id* (tags stripped), or "" when absent."""
    m = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</(span|p|div|pre)>', html, re.S)
    return unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip() if m else ""


def _dicom_file(tmp_path: Path, **attrs: object) -> Path:
    path = make_ct_series(tmp_path / generate_uid(), 1)[0]
    ds = dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PatientName = "Doe^Jane"
    ds.save_as(path)
    return path


def test_pages_are_for_admins_only(service: Service) -> None:
    for path in ("/console/network", "/console/rules"):
        assert service.get(path).status_code == 200
        assert service.get(path, role="radiologist").status_code == 403
        anonymous = httpx.get(f"{service.proc.url}{path}", timeout=30)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login")
    assert service.post("/console/network/ae", {"ae_title": "X"}, role="radiologist").status_code == 403


def test_destination_added_and_echoed(service: Service, echo_peer: int) -> None:
    bad = service.post("/console/network/destinations", {"name": "sink", "ae_title": "SINK", "host": "127.0.0.1",
                                                          "port": "70000"})
    assert bad.status_code == 422 and "port: " in _by_id(bad.text, "error-dest-new-port")
    assert 'value="70000"' in bad.text  # what was typed is kept
    tls = service.post("/console/network/destinations", {"name": "sink", "ae_title": "SINK", "host": "127.0.0.1",
                                                          "port": str(echo_peer), "tls": "true", "verify": "true"})
    assert tls.status_code == 422 and "[dicom.tls]" in _by_id(tls.text, "error-dest-new-tls")

    added = service.post("/console/network/destinations", {"name": "sink", "ae_title": "SINK", "host": "127.0.0.1",
                                                            "port": str(echo_peer), "verify": "true"})
    assert added.status_code == 303
    dest = next(d for d in service.proc.api("/api/config/destinations") if d["name"] == "sink")
    assert (dest["port"], dest["tls"], dest["verify"]) == (echo_peer, False, True)

    echoed = service.post("/console/network/destinations/sink/echo", {})
    assert echoed.status_code == 200
    assert _by_id(echoed.text, "echo-result-sink").startswith("success (")

    edited = service.post("/console/network/destinations", {"name": "sink", "ae_title": "SINK", "host": "127.0.0.1",
                                                             "port": str(free_port()), "edit": "true"})
    assert edited.status_code == 303
    down = service.post("/console/network/destinations/sink/echo", {})
    assert _by_id(down.text, "echo-result-sink").startswith("failed: ")
    assert service.post("/console/network/destinations/sink/remove", {}).status_code == 303
    named = service.post("/console/network/destinations/pacs/remove", {})  # routes[0] sends to it
    assert named.status_code == 409
    assert "named by routes[0].send_to" in _by_id(named.text, "error-dest-pacs")
    assert all(d["name"] != "sink" for d in service.proc.api("/api/config/destinations"))
    actions = [a["action"] for a in service.proc.api("/api/audit?limit=20")]
    assert {"destination added", "destination changed", "destination removed", "echo", "echo failed"} <= set(actions)


def test_local_ae_and_sources(service: Service) -> None:
    assert service.post("/console/network/ae", {"ae_title": "AIWS2"}).status_code == 303
    ae = service.proc.api("/api/config/ae")
    assert (ae["ae_title"], ae["require_known_source"]) == ("AIWS2", False)
    bad = service.post("/console/network/ae", {"ae_title": "A\\B", "require_known_source": "true"})
    assert bad.status_code == 422 and "not a valid AE title" in _by_id(bad.text, "error-ae-ae_title")

    assert service.post("/console/network/sources", {"ae_title": "CT1", "host": "10.0.0.1"}).status_code == 303
    assert service.post("/console/network/sources", {"ae_title": "CT1", "host": "10.0.0.2"}).status_code == 303
    edited = service.post("/console/network/sources", {"ae_title": "CT9", "host": "10.0.0.9", "port": "104",
                                                        "original": "CT1@10.0.0.1"})
    assert edited.status_code == 303
    sources = {(s["ae_title"], s["host"], s["port"]) for s in service.proc.api("/api/config/sources")}
    assert sources == {("CT1", "10.0.0.2", None), ("CT9", "10.0.0.9", 104)}  # the other CT1 kept
    no_host = service.post("/console/network/sources", {"ae_title": "CT8"})
    assert no_host.status_code == 422 and "no host" in no_host.text
    assert service.post("/console/network/sources/remove", {"ae_title": "CT9"}).status_code == 303
    assert [s["ae_title"] for s in service.proc.api("/api/config/sources")] == ["CT1"]


def _rules_form(page: str) -> dict[str, str]:
    """The rules table's fields as the page filled them."""
    fields = dict(re.findall(r'<input type="(?:hidden|text|number)" name="([a-z_]+(?:-\d+)?)"[^>]*value="([^"]*)"', page))
    fields |= {m[0]: unescape(m[1]) for m in re.findall(r'<textarea name="(match-\d+)"[^>]*>(.*?)</textarea>', page, re.S)}
    fields |= dict(re.findall(r'<select name="(pipeline-\d+)"[^>]*>.*?<option selected>([^<]+)</option>', page, re.S))
    fields.pop("csrf_token", None)
    return {k: unescape(v) for k, v in fields.items()}


def test_rules_edited_refused_next_to_the_field_then_saved_and_tested(service: Service, tmp_path: Path) -> None:
    version = rules_version(service.proc)  # 1 in a new service; counts on across the module's tests
    form = _rules_form(service.get("/console/rules").text)
    assert (form["version"], form["count"], form["pipeline-0"]) == (str(version), "2", "echo_summary")
    assert form["match-0"] == "Modality = '^CT$'\nSliceThickness = [0, 3]"

    bad = {**form, "match-0": 'Modalty = "CT"', "send_to-0": "pacs, nowhere"}
    refused = service.post("/console/rules", bad)
    assert refused.status_code == 422
    assert _by_id(refused.text, "error-0-match") == "match: 'Modalty' is not a DICOM keyword"
    assert _by_id(refused.text, "error-0-send_to") == "unknown destination 'nowhere'"
    assert "Modalty" in refused.text  # the table as submitted, to correct it

    thick = {**form, "match-0": "Modality = '^CT$'\nSliceThickness = [0, 6]"}
    assert service.post("/console/rules", thick).status_code == 303
    assert rules_version(service.proc) == version + 1
    stale = service.post("/console/rules", {**form, "match-0": "Modality = 'CT'"})
    assert stale.status_code == 409 and f"version {version + 1}" in _by_id(stale.text, "rules-error")

    path = _dicom_file(tmp_path, SliceThickness="5")
    with path.open("rb") as fp:
        tested = service.post("/console/rules/test", {}, files={"file": ("Doe_Jane.dcm", fp, "application/dicom")})
    assert tested.status_code == 200
    assert _by_id(tested.text, "decided-0") == "Route #0 decides: echo_summary → pacs"
    assert "SliceThickness</code> [0, 6]: within range (value <code>5</code>)" in tested.text
    assert "Doe" not in tested.text  # neither the file name nor the patient's name

    study = generate_uid()
    files = make_ct_series(tmp_path / study, 2, study_uid=study)
    assert storescu("127.0.0.1", service.proc.dicom_port, "AIWS", "CT1", files).returncode == 0
    wait_for(lambda: service.proc.api(f"/api/studies/{study}")["state"] == "complete", timeout=30, what="study")
    by_study = service.post("/console/rules/test", {"study_uid": study}, files={"file": ("", b"", "")})
    assert by_study.status_code == 200 and "received study " + study in by_study.text
    assert _by_id(by_study.text, "decided-0") == "Route #0 decides: echo_summary → pacs"
    none = service.post("/console/rules/test", {"study_uid": ""}, files={"file": ("", b"", "")})
    assert none.status_code == 422 and "choose a DICOM file or a received study" in _by_id(none.text, "test-error")


# -- in a real browser -----------------------------------------------------------------------------------
def _wait(browser: Any, element_id: str) -> Any:
    return WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, element_id)))


def test_browser_adds_a_destination_and_echoes_it(service: Service, echo_peer: int, browser: Any,
                                                  login: Callable[..., None],
                                                  screenshot: Callable[[Any, str], Path]) -> None:
    login(browser, service.console, Role.ADMIN)
    browser.find_element(By.ID, "nav-network").click()
    _wait(browser, "add-destination")
    for field, value in (("name", "sink"), ("ae_title", "SINK"), ("host", "127.0.0.1"), ("port", str(echo_peer))):
        browser.find_element(By.ID, f"dest-new-{field}").send_keys(value)
    browser.find_element(By.ID, "add-destination-button").click()
    assert _wait(browser, "flash").text == "Destination sink saved."
    assert _wait(browser, "dest-sink")
    browser.find_element(By.ID, "echo-sink").click()
    result = _wait(browser, "echo-result-sink")
    assert result.text.startswith("success (") and "ok" in result.get_attribute("class")
    screenshot(browser, "network-destination-echoed")


def test_browser_edits_a_route_and_tests_it_on_a_file(service: Service, tmp_path: Path, browser: Any,
                                                      login: Callable[..., None],
                                                      screenshot: Callable[[Any, str], Path]) -> None:
    version = rules_version(service.proc)
    login(browser, service.console, Role.ADMIN)
    browser.get(f"{service.proc.url}/console/rules")
    conditions = _wait(browser, "match-0")
    conditions.clear()
    conditions.send_keys('Modalty = "^CT$"')
    browser.find_element(By.ID, "save-rules").click()
    assert _wait(browser, "error-0-match").text == "match: 'Modalty' is not a DICOM keyword"
    screenshot(browser, "rules-refused-next-to-the-field")

    conditions = browser.find_element(By.ID, "match-0")
    conditions.clear()
    conditions.send_keys("Modality = '^CT$'\nSliceThickness = [0, 6]")
    browser.find_element(By.ID, "save-rules").click()
    assert _wait(browser, "flash").text == f"Routing rules saved: version {version + 1}, applied to the next study."
    assert "SliceThickness = [0, 6]" in browser.find_element(By.ID, "rules-toml").text

    browser.find_element(By.ID, "test-file").send_keys(str(_dicom_file(tmp_path, SliceThickness="5")))
    browser.find_element(By.ID, "test-button").click()
    assert _wait(browser, "decided-0").text == "Route #0 decides: echo_summary → pacs"
    explained = browser.find_element(By.ID, "explain-0").text
    assert "SliceThickness [0, 6]: within range (value 5)" in explained
    screenshot(browser, "rules-tested-on-a-file")
