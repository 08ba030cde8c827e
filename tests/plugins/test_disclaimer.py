"""Every plugin output carries a disclaimer and its provenance (model, version, trained on, knowledge base,
version, review status), shown by the API, the CLI and the status page: the sepsis risk says that its model
was trained on a synthetic cohort; the pharmacy shows its knowledge base's own status ("starter set ... to be
reviewed by the hospital pharmacy")."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aiws.api.app import create_app
from aiws.api.deps import ApiContext
from aiws.cli import main
from aiws.config import Config
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings
from plugins.base import DEFAULT_DISCLAIMER, InputModel, Plugin, PluginOutput
from plugins.pharmacy.kb import KnowledgeBase
from plugins.registry import BUILTINS, Registry
from plugins.runner import run_plugin

VITALS = {"respiratory_rate": 26, "spo2": 90, "on_oxygen": True, "systolic_bp": 88, "heart_rate": 128,
          "consciousness": "C", "temperature_c": 39.4}
PHARMACY = {"patient": {"age": 70, "sex": "female", "weight_kg": 60, "creatinine_mg_dl": 1.0},
            "prescriptions": [{"drug": "paracetamol", "dose_mg": 1000, "frequency_per_day": 3}]}
KB_STATUS = KnowledgeBase.load().status


def test_knowledge_base_status_is_the_starter_set_wording() -> None:
    assert KB_STATUS.startswith("starter set") and "reviewed and validated by the hospital pharmacy" in KB_STATUS


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(dict(BUILTINS))


def test_sepsis_risk_states_its_synthetic_training(registry: Registry) -> None:
    out = run_plugin(registry.get("sepsis"), json.dumps(VITALS).encode()).body()
    assert out["risk"]["probability"] > 0.5
    assert "SYNTHETIC cohort" in out["disclaimer"] and "not a clinical probability" in out["disclaimer"]
    prov = out["provenance"]
    assert prov["model"].startswith("sepsis_risk") and prov["model_version"] == "1.0.0"
    assert prov["trained_on"].startswith("synthetic cohort") and "4000 simulated" in prov["trained_on"]
    assert "no real patient data" in prov["trained_on"] and "not validated on real patients" in prov["review_status"]
    risk_line = next(line for line in out["explanation"] if line.startswith("risk of sepsis onset"))
    assert "synthetic cohort, not validated on real patients" in risk_line


def test_pharmacy_shows_its_knowledge_base_status(registry: Registry) -> None:
    out = run_plugin(registry.get("pharmacy"), json.dumps(PHARMACY).encode()).body()
    prov = out["provenance"]
    assert prov["knowledge_base"] == "aiws-pharmacy-kb" and prov["knowledge_base_version"] == out["kb_version"]
    assert prov["review_status"] == KB_STATUS and KB_STATUS in out["disclaimer"] and prov["model"] is None


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_declares_disclaimer_and_provenance(registry: Registry, name: str) -> None:
    info = registry.get(name).describe()
    assert info["disclaimer"] and info["disclaimer"] != DEFAULT_DISCLAIMER
    assert info["provenance"]["review_status"] and not info["provenance"]["review_status"].startswith("not declared")


class _In(InputModel):
    x: float


class _Out(PluginOutput):
    doubled: float


class _Bare(Plugin[_In, _Out]):
    """A third-party plugin that declares nothing."""

    name, version, summary = "bare", "0.1", "doubles x"
    input_model, output_model = _In, _Out

    def run(self, data: _In) -> _Out:
        return _Out(plugin=self.name, version=self.version, rules=[], explanation=[], doubled=2 * data.x)


def test_a_plugin_that_declares_nothing_gets_the_default_and_says_so() -> None:
    out = run_plugin(_Bare(), b'{"x": 2}').body()
    assert out["doubled"] == 4 and out["disclaimer"] == DEFAULT_DISCLAIMER
    assert out["provenance"]["review_status"] == "not declared by the plugin bare" and out["provenance"]["model"] is None


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    config = Config()
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="t", sender_settings=SenderSettings())
    with TestClient(create_app(ctx), headers={"Authorization": "Bearer t"}) as c:
        yield c
    ledger.close()


def test_api_list_describe_and_result_carry_them(client: TestClient) -> None:
    listing = {p["name"]: p for p in client.get("/api/plugins").json()}
    assert "SYNTHETIC cohort" in listing["sepsis"]["disclaimer"]
    assert listing["pharmacy"]["provenance"]["review_status"] == KB_STATUS
    assert client.get("/api/plugins/ed_flow").json()["provenance"]["trained_on"].startswith("fitted at each request")
    result: dict[str, Any] = client.post("/api/plugins/sepsis", json=VITALS).json()
    assert result["provenance"]["trained_on"].startswith("synthetic cohort") and "SYNTHETIC" in result["disclaimer"]


def test_status_page_lists_plugins_with_disclaimer_and_provenance(client: TestClient) -> None:
    page = client.get("/console/status").text
    assert "<h2>Plugins</h2>" in page
    assert "trained on: synthetic cohort" in page and "knowledge base: aiws-pharmacy-kb" in page
    assert "starter set" in page and "reviewed and validated by the hospital pharmacy" in page


def test_cli_list_and_run_show_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    assert main(["plugin", "list", "--config", str(cfg)]) == 0
    listing = capsys.readouterr().out
    assert "disclaimer: Decision support, not a diagnosis" in listing and "trained on: synthetic cohort" in listing
    assert f"review status: {KB_STATUS}" in listing
    src, out = tmp_path / "rx.json", tmp_path / "out.json"
    src.write_text(json.dumps(PHARMACY))
    assert main(["plugin", "run", "pharmacy", "--input", str(src), "--output", str(out), "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert f"review status: {KB_STATUS}" in printed and "disclaimer: Prescription review support" in printed
    assert json.loads(out.read_text())["provenance"]["review_status"] == KB_STATUS


def test_status_page_survives_a_plugin_that_cannot_load(client: TestClient) -> None:
    def broken() -> Plugin[Any, Any]:
        raise ModuleNotFoundError("No module named 'vendor_score'")

    client.app.state.plugin_registry = Registry({"broken": broken, "sepsis": BUILTINS["sepsis"]})  # type: ignore[attr-defined]
    page = client.get("/console/status")
    assert page.status_code == 200 and "cannot load: No module named" in page.text and "SYNTHETIC" in page.text
