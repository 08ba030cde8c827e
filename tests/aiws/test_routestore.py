"""Live routing rules: validation as the file's, versions, audit, file-wins at start, the HTTP API and
"test this rule", and a running service routing the next study by a changed rule without restart."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from aiws.api.app import create_app
from aiws.api.deps import ApiContext
from aiws.config import Config, config_from_mapping
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.netsettings import sender_settings
from aiws.routestore import (
    RouteStore,
    RulesInvalid,
    StaleVersion,
    explain_routes,
    routes_from_toml,
    routes_to_toml,
)
from aiws.routing import route_study
from factories import make_ct_series
from peers import AiwsProcess, storescu, wait_for

TOKEN = "store-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CT_ROUTE = {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^CT$", "SliceThickness": [0, 3]}}


def _config(tmp_path: Path, routes: list[dict[str, Any]] | None = None) -> Config:
    return config_from_mapping({
        "storage": {"data_dir": str(tmp_path / "var")},
        "dicom": {"destinations": [{"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242}]},
        "routes": [CT_ROUTE] if routes is None else routes,
    })


@dataclass
class Stores:
    config: Config
    ledger: Ledger
    network: NetworkStore
    routes: RouteStore


def _open(tmp_path: Path, config: Config) -> Stores:
    ledger = Ledger(tmp_path / "var" / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    store = RouteStore(ledger, config, network)
    store.seed(config)
    return Stores(config, ledger, network, store)


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return _open(tmp_path, _config(tmp_path))


def _problems(store: RouteStore, routes: Any) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        store.replace(routes, store.current().version, "user:test")
    return [str(p) for p in caught.value.problems]


# -- the store ----------------------------------------------------------------------------------------
def test_seeded_from_the_file(stores: Stores) -> None:
    rules = stores.routes.current()
    assert rules.version == 1 and rules.from_file
    assert [r.model_dump(mode="json") for r in rules.routes] == [
        {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^CT$", "SliceThickness": [0.0, 3.0]}}]
    assert stores.ledger.list_audit(1)[0]["action"] == "routing rules loaded from file"


@pytest.mark.parametrize("routes,expected", [
    ([{"pipeline": "echo_summary", "match": {"Modalty": "CT"}}], "routes[0].match: 'Modalty' is not a DICOM keyword"),
    ([CT_ROUTE, {"pipeline": "echo_summary", "match": {"Modality": "CT("}}],
     "routes[1].match: Modality: invalid regular expression"),
    ([{"pipeline": "echo_summary", "match": {"Modality": [1, 2]}}],
     "routes[0].match: Modality: a [min, max] range needs a numeric attribute"),
    ([{"pipeline": "echo_summary", "match": {"SliceThickness": [3, 1]}}], "routes[0].match: SliceThickness: range"),
    ([{"pipeline": "no_such_pipeline"}], "routes[0].pipeline: unknown pipeline 'no_such_pipeline' (known: "),
    ([CT_ROUTE, CT_ROUTE, {"pipeline": "echo_summary", "send_to": ["nowhere"]}],
     "routes[2].send_to: unknown destination 'nowhere'"),
    ([{"pipeline": "echo_summary", "colour": "red"}], "routes[0].colour: unknown key"),
    ([{"send_to": ["pacs"]}], "routes[0].pipeline: Field required"),
    ({"pipeline": "echo_summary"}, "routes: expected a list of routes"),
])
def test_a_bad_rule_is_refused_naming_index_and_field(stores: Stores, routes: Any, expected: str) -> None:
    problems = _problems(stores.routes, routes)
    assert any(p.startswith(expected) for p in problems), problems
    assert stores.routes.current().version == 1  # nothing changed


def test_every_problem_of_a_route_is_named_at_once(stores: Stores) -> None:
    problems = _problems(stores.routes, [{"pipeline": "nope", "send_to": ["nowhere"], "match": {"Modalty": "CT"}}])
    assert [p.split(":")[0] for p in problems] == ["routes[0].match", "routes[0].pipeline", "routes[0].send_to"]


def test_destinations_are_the_live_ones(stores: Stores) -> None:
    route = {"pipeline": "echo_summary", "send_to": ["archive"]}
    assert _problems(stores.routes, [route]) == ["routes[0].send_to: unknown destination 'archive'"]
    stores.network.add_destination({"name": "archive", "ae_title": "ARCH", "host": "127.0.0.1", "port": 104}, "t")
    assert stores.routes.replace([route], 1, "user:test").version == 2


def test_change_is_versioned_and_audited_with_old_and_new(stores: Stores) -> None:
    mr = {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^MR$", "SliceThickness": [0, 3]}}
    rules = stores.routes.replace([mr], 1, "user:alice")
    assert rules.version == 2 and not rules.from_file
    row = stores.ledger.list_audit(1)[0]
    assert (row["actor"], row["action"]) == ("user:alice", "routing rules changed")
    assert row["detail"]["version"] == 2
    assert row["detail"]["changes"] == [{"key": "routes.0.match.Modality", "old": "^CT$", "new": "^MR$"}]

    with pytest.raises(StaleVersion, match="at version 2, this change was made on version 1"):
        stores.routes.replace([CT_ROUTE], 1, "user:bob")
    assert stores.routes.current().routes[0].match["Modality"] == "^MR$"  # bob's stale edit lost nothing

    assert stores.routes.replace([mr], 2, "user:alice").version == 2  # no change: nothing written
    assert stores.ledger.list_audit(1)[0]["detail"]["version"] == 2


def test_another_process_sees_a_change_at_its_next_read(tmp_path: Path, stores: Stores) -> None:
    other = _open(tmp_path, stores.config)  # another service on the same ledger (its own connection, cache)
    assert [r.pipeline for r in other.routes.routes()] == ["echo_summary"]
    stores.routes.replace([], 1, "user:test")
    assert other.routes.routes() == ()
    assert other.routes.current().version == 2


def test_file_wins_at_start_only_when_it_changed(tmp_path: Path, stores: Stores) -> None:
    stores.routes.replace([], 1, "user:test")
    again = _open(tmp_path, stores.config)  # a restart with the same file: the API's change persists
    assert again.routes.current().routes == () and again.routes.current().version == 2
    changed = _config(tmp_path, [{**CT_ROUTE, "send_to": []}])
    restarted = _open(tmp_path, changed)
    assert restarted.routes.current().version == 3 and restarted.routes.current().from_file
    assert restarted.routes.current().routes[0].send_to == ()
    row = restarted.ledger.list_audit(1)[0]
    assert (row["action"], row["detail"]["reason"]) == ("routing rules loaded from file", "file changed")


def test_start_refuses_live_rules_naming_a_removed_destination(tmp_path: Path, stores: Stores) -> None:
    stores.network.add_destination({"name": "archive", "ae_title": "ARCH", "host": "127.0.0.1", "port": 104}, "t")
    stores.routes.replace([{"pipeline": "echo_summary", "send_to": ["archive"]}], 1, "user:test")
    stores.network.remove_destination("archive", "t")
    with pytest.raises(RulesInvalid, match=r"routes\[0\].send_to: unknown destination 'archive' \(live rules, "
                                           r"version 2; correct them with `aiws routes set FILE`\)"):
        _open(tmp_path, stores.config).routes.check()


def test_toml_round_trip() -> None:
    text = routes_to_toml(_config(Path("/nonexistent"), [
        CT_ROUTE, {"pipeline": "echo_summary", "match": {"ImageType": r"ORIGINAL\\PRIMARY", "SeriesDescription": "it's"}},
    ]).routes)
    assert "ImageType = 'ORIGINAL\\\\PRIMARY'" in text  # a literal string: the regex as written
    assert routes_from_toml(text) == [
        {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^CT$", "SliceThickness": [0, 3]}},
        {"pipeline": "echo_summary", "send_to": [],
         "match": {"ImageType": r"ORIGINAL\\PRIMARY", "SeriesDescription": "it's"}}]
    with pytest.raises(RulesInvalid, match="only \\[\\[routes\\]\\] tables here, found dicom"):
        routes_from_toml("[dicom]\nport = 1\n")
    with pytest.raises(RulesInvalid, match="TOML syntax error"):
        routes_from_toml("[[routes]\n")


def _hdr(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_explain_names_the_deciding_route_and_why_the_others_did_not(stores: Stores) -> None:
    routes = [
        {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^MR$"}},
        {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^CT$", "SliceThickness": [0, 3]}},
        {"pipeline": "echo_summary", "send_to": [], "match": {"Modality": "CT"}},
    ]
    compiled = stores.routes.replace(routes, 1, "user:test").compiled
    headers = {"1.2.3": _hdr(Modality="CT", SliceThickness="1"), "1.2.4": _hdr(Modality="CT", SliceThickness="5")}
    thin, thick = explain_routes(compiled, headers)
    assert [v.index for v in thin.deciding] == [1]
    assert (thin.verdicts[0].matched, thin.verdicts[0].conditions[0].reason) == (False, "does not match")
    assert (thin.verdicts[2].matched, thin.verdicts[2].decides, thin.verdicts[2].shadowed_by) == (True, False, 1)
    assert [v.index for v in thick.deciding] == [2]
    assert [c.reason for c in thick.verdicts[1].conditions] == ["matches", "out of range"]
    jobs = route_study(compiled, headers)  # the explanation is the routing's
    assert {(j.send_to, j.series_uids) for j in jobs} == {(("pacs",), ("1.2.3",)), ((), ("1.2.4",))}


# -- the HTTP API ---------------------------------------------------------------------------------------
@pytest.fixture
def client(stores: Stores) -> Iterator[TestClient]:
    ctx = ApiContext(stores.config, stores.ledger, stores.network, TOKEN, sender_settings(stores.config, "AIWS"),
                     routes=stores.routes)
    with TestClient(create_app(ctx)) as c:
        yield c


def test_api_get_and_put_with_version(client: TestClient) -> None:
    assert client.get("/api/routes").status_code == 401
    got = client.get("/api/routes", headers=AUTH).json()
    assert got["version"] == 1 and got["from_file"] is True and got["routes"][0]["pipeline"] == "echo_summary"
    new = [{**CT_ROUTE, "send_to": []}]
    put = client.put("/api/routes", headers=AUTH, json={"version": 1, "routes": new})
    assert put.status_code == 200 and put.json()["version"] == 2 and put.json()["routes"][0]["send_to"] == []
    stale = client.put("/api/routes", headers=AUTH, json={"version": 1, "routes": [CT_ROUTE]})
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]


def test_api_bad_rule_is_422_naming_index_and_field(client: TestClient) -> None:
    r = client.put("/api/routes", headers=AUTH,
                   json={"version": 1, "routes": [CT_ROUTE, {"pipeline": "echo_summary", "match": {"Modalty": "CT"}}]})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"loc": ["body", "routes", 1, "match"], "msg": "'Modalty' is not a DICOM keyword"}]
    assert client.get("/api/routes", headers=AUTH).json()["version"] == 1


def test_api_destination_named_by_a_route_cannot_be_removed(client: TestClient) -> None:
    refused = client.delete("/api/config/destinations/pacs", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("destination 'pacs' is named by routes[0].send_to: change the routing rules "
                                        "first")
    assert client.put("/api/routes", headers=AUTH, json={"version": 1, "routes": []}).status_code == 200
    assert client.delete("/api/config/destinations/pacs", headers=AUTH).status_code == 204


def _dicom_bytes(tmp_path: Path, **attrs: object) -> tuple[bytes, str]:
    path = make_ct_series(tmp_path / generate_uid(), 1)[0]
    ds = dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PatientName = "Doe^Jane"
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), str(ds.SeriesInstanceUID)


def test_api_test_on_an_uploaded_file(client: TestClient, tmp_path: Path) -> None:
    data, series = _dicom_bytes(tmp_path, SliceThickness="5")
    r = client.post("/api/routes/test", headers=AUTH, files={"file": ("x.dcm", data, "application/dicom")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["values_shown"] is True and body["jobs"] == [] and body["version"] == 1
    (s,) = body["series"]
    assert s["series_uid"] == series and s["deciding"] == []
    assert s["routes"][0]["conditions"] == [
        {"keyword": "Modality", "rule": "^CT$", "matched": True, "reason": "matches", "value": "CT"},
        {"keyword": "SliceThickness", "rule": "[0, 3]", "matched": False, "reason": "out of range", "value": "5"}]

    # candidate rules (not saved): the same file now matches, a person name's value is withheld
    candidate = [{"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "CT", "PatientName": "."}}]
    r = client.post("/api/routes/test", headers=AUTH, files={"file": ("x.dcm", data, "application/dicom")},
                    data={"routes": json.dumps(candidate)})
    s = r.json()["series"][0]
    assert s["deciding"] == [0] and r.json()["version"] is None
    assert s["routes"][0]["conditions"][1]["value"] == "(withheld)"
    assert "Doe" not in r.text
    assert client.get("/api/routes", headers=AUTH).json()["version"] == 1


def test_api_test_takes_a_file_above_the_default_body_limit_but_not_without_credentials(
        client: TestClient, tmp_path: Path) -> None:
    path = make_ct_series(tmp_path / "big", 1, rows=1024, cols=1024)[0]  # 2 MiB: above the 1 MiB of other routes
    data = path.read_bytes()
    assert len(data) > 2 * 2**20
    assert client.post("/api/routes/test", files={"file": ("x.dcm", data, "application/dicom")}).status_code == 401
    r = client.post("/api/routes/test", headers=AUTH, files={"file": ("x.dcm", data, "application/dicom")})
    assert r.status_code == 200 and r.json()["series"][0]["deciding"] == [0]


def test_api_test_refuses_what_is_not_dicom_without_echoing_it(client: TestClient) -> None:
    r = client.post("/api/routes/test", headers=AUTH, files={"file": ("x.dcm", b"Doe^Jane " * 50, "text/plain")})
    assert r.status_code == 422 and "file: not a readable DICOM file" in r.text and "Doe" not in r.text
    bad = client.post("/api/routes/test", headers=AUTH, files={"file": ("x.dcm", b"x", "text/plain")},
                      data={"routes": json.dumps([{"pipeline": "echo_summary", "match": {"Modalty": "CT"}}])})
    assert bad.status_code == 422
    assert client.post("/api/routes/test", headers=AUTH, json={"study_uid": "not a uid"}).status_code == 422
    assert client.post("/api/routes/test", headers=AUTH, json={"study_uid": "1.2.3.4"}).status_code == 404


# -- a running service ----------------------------------------------------------------------------------
SERVICE = """
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
[routes.match]
Modality = "^CT$"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AiwsProcess]:
    (tmp_path / "svc").mkdir()
    proc = AiwsProcess(tmp_path / "svc", SERVICE, env={"AIWS_WORKERS": "0"}).start()
    yield proc
    proc.stop()


def _send(service: AiwsProcess, tmp_path: Path, modality: str) -> str:
    study = generate_uid()
    files = make_ct_series(tmp_path / study, 2, study_uid=study)
    for f in files:
        ds = dcmread(f)
        ds.Modality = modality
        ds.save_as(f)
    assert storescu("127.0.0.1", service.dicom_port, "AIWS", "CT1", files).returncode == 0
    wait_for(lambda: (service.api(f"/api/studies/{study}") or {}).get("state") == "complete", timeout=30,
             what=f"study {study} complete")
    return study


def _pipelines(service: AiwsProcess, study: str) -> list[str]:
    return [j["pipeline"] for j in service.api(f"/api/studies/{study}")["jobs"]]


@pytest.mark.network
def test_a_running_service_routes_the_next_study_by_the_new_rule(service: AiwsProcess, tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer test-token"}
    mr_before = _send(service, tmp_path, "MR")
    assert _pipelines(service, mr_before) == []  # the file's rule: CT only

    rule = {"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "^MR$"}}
    r = httpx.put(f"{service.url}/api/routes", headers=headers, json={"version": 1, "routes": [rule]}, timeout=30)
    assert r.status_code == 200 and r.json()["version"] == 2

    mr_after = _send(service, tmp_path, "MR")  # no restart
    ct_after = _send(service, tmp_path, "CT")
    assert _pipelines(service, mr_after) == ["echo_summary"]
    assert _pipelines(service, ct_after) == []

    test = httpx.post(f"{service.url}/api/routes/test", headers=headers, json={"study_uid": ct_after}, timeout=30)
    (series,) = test.json()["series"]
    assert series["deciding"] == [] and test.json()["values_shown"] is False
    assert series["routes"][0]["conditions"][0] == {"keyword": "Modality", "rule": "^MR$", "matched": False,
                                                     "reason": "does not match", "value": "(withheld)"}
    audit = httpx.get(f"{service.url}/api/audit", headers=headers, timeout=30).json()
    change = next(a for a in audit if a["action"] == "routing rules changed")
    assert change["actor"] == "api:admin-token"
    assert {"key": "routes.0.match.Modality", "old": "^CT$", "new": "^MR$"} in change["detail"]["changes"]


# -- the command line -----------------------------------------------------------------------------------
def test_cli_show_set_and_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aiws.cli import main

    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f"""
[storage]
data_dir = "{tmp_path / 'var'}"
[[dicom.destinations]]
name = "pacs"
ae_title = "PACS"
host = "127.0.0.1"
port = 4242
[[routes]]
pipeline = "echo_summary"
send_to = ["pacs"]
[routes.match]
Modality = "^MR$"
""")
    assert main(["routes", "show", "--config", str(cfg)]) == 0
    shown = capsys.readouterr().out
    assert "version 1 (as in the configuration file)" in shown and "Modality = '^MR$'" in shown

    rules = tmp_path / "rules.toml"
    rules.write_text(shown.replace("^MR$", "^CT$"))  # what show prints is what set reads
    assert main(["routes", "set", str(rules), "--config", str(cfg)]) == 0
    assert "routing rules version 2: 1 routes" in capsys.readouterr().out
    assert main(["routes", "set", str(rules), "--version", "1", "--config", str(cfg)]) == 0  # same rules: no change
    rules.write_text(shown.replace("Modality", "Modalty"))
    assert main(["routes", "set", str(rules), "--config", str(cfg)]) == 1
    assert "routes[0].match: 'Modalty' is not a DICOM keyword" in capsys.readouterr().err
    rules.write_text(shown.replace("^MR$", "^PT$"))
    assert main(["routes", "set", str(rules), "--version", "1", "--config", str(cfg)]) == 1
    assert "at version 2, this change was made on version 1" in capsys.readouterr().err

    dicom = tmp_path / "one.dcm"
    dicom.write_bytes(_dicom_bytes(tmp_path, SliceThickness="5")[0])
    assert main(["routes", "test", str(dicom), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "#0 echo_summary -> pacs" in out and "ok  Modality ^CT$: matches (value 'CT')" in out

    assert main(["ae", "remove", "destination", "pacs", "--config", str(cfg)]) == 1
    assert "destination 'pacs' is named by routes[0].send_to" in capsys.readouterr().err
