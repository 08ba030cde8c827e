"""The status page (``GET /``), rendered from the Jinja2 template shipped as package data: every section
(sources, destinations with their TLS verification, studies with their error, jobs, sends, plugins with a
plugin that cannot load) and the HTML escaping of what it shows."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aiws.api.app import create_app
from aiws.api.deps import ApiContext
from aiws.config import config_from_mapping
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings
from plugins.base import Plugin
from plugins.registry import BUILTINS, Registry

STUDY = "1.2.826.0.1.3680043.8.498.77"
ADMIN = {"Authorization": "Bearer t"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    tls = {"cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem")}
    config = config_from_mapping({"dicom": {
        "tls": tls, "sources": [{"ae_title": "CT1", "host": "10.0.0.7"}, {"ae_title": "MR1", "any_host": True}],
        "destinations": [{"name": "pacs", "ae_title": "PACS", "host": "10.0.0.9", "port": 2762, "tls": True,
                          "verify": False},
                         {"name": "plain", "ae_title": "PLAIN", "host": "10.0.0.10", "port": 104}]}})
    ledger = Ledger(tmp_path / "aiws.db")
    now = time.time()
    with ledger.transaction() as con:
        con.execute("INSERT INTO studies(study_uid, state, first_received_at, last_received_at, n_instances, "
                    "calling_ae, error) VALUES(?, 'error', ?, ?, 3, 'CT1', ?)",
                    (STUDY, now, now, "quarantined 1 instance, first: data set cannot be parsed"))
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="t", sender_settings=SenderSettings())
    with TestClient(create_app(ctx)) as c:
        yield c
    ledger.close()


def test_every_section_is_shown(client: TestClient) -> None:
    page = client.get("/console/status", headers=ADMIN)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for section in ("Sources", "Destinations", "Studies", "Jobs", "Sends", "Plugins"):
        assert f"<h2>{section}</h2>" in text
    assert "<td>CT1</td><td>10.0.0.7</td>" in text and "<td>MR1</td><td>any</td>" in text
    assert "<td>2762</td><td>NOT verified (verify = false)</td>" in text and "<td>104</td><td>no</td>" in text
    assert f"<td>{STUDY}</td><td>error</td><td>3</td>" in text
    assert "quarantined 1 instance, first: data set cannot be parsed" in text
    assert "<tr><td colspan=99>none</td></tr>" in text  # no jobs, no sends
    assert "<td>sepsis</td>" in text and "SYNTHETIC" in text


def test_values_are_html_escaped(client: TestClient) -> None:
    def broken() -> Plugin[Any, Any]:
        raise ModuleNotFoundError("No module named '<script>alert(1)</script>' & more")

    client.app.state.plugin_registry = Registry({"broken": broken, "sepsis": BUILTINS["sepsis"]})  # type: ignore[attr-defined]
    text = client.get("/console/status", headers=ADMIN).text
    assert "<script>" not in text
    assert "cannot load: No module named &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; &amp; more" in text
