"""POST /api/plugins/{name} and `aiws plugin run`: JSON/FHIR/CSV in, JSON out, 422 naming the field,
a clear CLI error, and one audit row per run with no patient identifier."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aiws.api.app import create_app
from aiws.api.deps import ApiContext
from aiws.cli import main
from aiws.config import Config
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings
from plugins.runner import sha256_hex

ROOT = Path(__file__).resolve().parents[2]
VITALS = {"ref": "Patient/SECRET-77", "respiratory_rate": 23, "spo2": 94, "on_oxygen": False, "systolic_bp": 98,
          "heart_rate": 112, "consciousness": "A", "temperature_c": 38.6}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Ledger]]:
    config = Config()
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="t",
                     sender_settings=SenderSettings())
    with TestClient(create_app(ctx), headers={"Authorization": "Bearer t"}) as client:
        yield client, ledger
    ledger.close()


def _plugin_audit(ledger: Ledger) -> list[dict[str, object]]:
    return ledger.list_audit(action_prefix="plugin.run")


def test_http_list_describe_and_run(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    names = [p["name"] for p in client.get("/api/plugins").json()]
    assert names == ["ed_flow", "or_planning", "pharmacy", "sepsis"]
    assert "respiratory_rate" in client.get("/api/plugins/sepsis").json()["input_schema"]["properties"]
    body = json.dumps(VITALS).encode()
    r = client.post("/api/plugins/sepsis", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["news2"]["total"] == 8 and r.json()["ref"] == "Patient/SECRET-77"
    [row] = _plugin_audit(ledger)
    assert row["actor"].startswith("api:") and row["detail"]["status"] == "ok"
    assert row["detail"]["input_sha256"] == sha256_hex(body) and row["detail"]["version"] == "1.0.0"
    assert row["detail"]["plugin"] == "sepsis" and "SECRET" not in json.dumps(row)


def test_http_invalid_input_is_422_naming_the_field(api: tuple[TestClient, Ledger]) -> None:
    client, ledger = api
    r = client.post("/api/plugins/pharmacy", json={"patient": {"age": 70}, "prescriptions": [{"drug": "x",
                                                                                             "route": "nose"}]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "prescriptions[0].route" and "unknown route" in r.json()["errors"][0]["rule"]
    assert _plugin_audit(ledger)[0]["detail"]["status"] == "invalid"
    fhir = client.post("/api/plugins/or_planning", json={"resourceType": "Bundle", "type": "collection"})
    assert fhir.status_code == 422 and "does not read FHIR" in fhir.json()["detail"]
    assert client.post("/api/plugins/nope", json={}).status_code == 404


def test_http_csv_batch(api: tuple[TestClient, Ledger]) -> None:
    client, _ = api
    csv_text = "ref,age,sex,weight_kg,creatinine_mg_dl,drug,dose_mg,frequency_per_day\n" \
               "a,70,female,60,1.2,warfarin,5,1\na,70,female,60,1.2,ibuprofen,400,3\nb,50,male,80,0.9,paracetamol,1000,4\n"
    r = client.post("/api/plugins/pharmacy", content=csv_text, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200
    assert [(o["ref"], o["triage_rank"]) for o in r.json()] == [("a", 1), ("b", 2)]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "aiws.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    return path


def test_cli_run_list_and_output(tmp_path: Path, cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "vitals.json"
    src.write_text(json.dumps(VITALS))
    assert main(["plugin", "run", "sepsis", "--input", str(src), "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["news2"]["risk"] == "high"
    out = tmp_path / "out.json"
    hist = ROOT / "plugins" / "ed_flow" / "data" / "history.csv"
    assert main(["plugin", "run", "ed_flow", "--input", str(hist), "--output", str(out), "--config", str(cfg)]) == 0
    assert json.loads(out.read_text())["backtest"]["beats_baseline"] is True
    assert main(["plugin", "list", "--config", str(cfg)]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("sepsis", "pharmacy", "ed_flow", "or_planning"))
    ledger = Ledger(tmp_path / "var" / "aiws.db")
    rows = _plugin_audit(ledger)
    assert [(r["actor"], r["detail"]["plugin"]) for r in rows] == [("cli", "ed_flow"), ("cli", "sepsis")]
    assert rows[1]["detail"]["input_sha256"] == sha256_hex(src.read_bytes()) and "SECRET" not in json.dumps(rows)


def test_cli_invalid_input_is_a_clear_error(tmp_path: Path, cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({**VITALS, "temperature_c": 98.6}))
    assert main(["plugin", "run", "sepsis", "--input", str(src), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "invalid input" in err and "temperature_c: Input should be less than or equal to 45" in err
    assert main(["plugin", "run", "nope", "--input", str(src), "--config", str(cfg)]) == 2
    assert "plugin 'nope' is not registered" in capsys.readouterr().err


def test_cli_in_a_subprocess_reads_standard_input(cfg: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "aiws.cli", "plugin", "run", "pharmacy", "--input", "-",
                          "--config", str(cfg)], input=json.dumps({"patient": {"age": 40}, "prescriptions": [
                              {"drug": "omeprazole"}, {"drug": "esomeprazole"}]}),
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["alerts"][0]["type"] == "duplicate"
