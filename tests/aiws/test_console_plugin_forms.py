"""Console plugin forms (/console/plugins, /console/plugins/{name}): each form is generated from the plugin's
input model and filled with an example that runs; a run shows the result and writes the API's audit row (plugin,
version, actor; never the inputs); a model's refusal shows the form again with the message beside the field;
clinicians (and admins) only, CSRF checked. The Gantt chart is read back: one bar per scheduled case, in its room's
row, in time order."""
from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aiws.api.accounts import create_account, open_session
from aiws.api.app import create_app
from aiws.api.auth import SESSION_COOKIE, Role
from aiws.api.deps import ApiContext
from aiws.api.plugin_examples import example
from aiws.api.plugin_forms import form_spec, values_from_form
from aiws.config import Config
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings
from plugins.ed_flow.models import EdFlowInput
from plugins.or_planning.models import OrInput
from plugins.pharmacy.models import PharmacyInput
from plugins.sepsis.models import SepsisInput

PASSWORD = "console-pass-1234"
PLUGINS = ("sepsis", "pharmacy", "or_planning", "ed_flow")
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Console:
    client: TestClient
    ledger: Ledger
    csrf: dict[str, str]

    def sign_in(self, role: Role) -> str:
        """Use a session of the account named after *role*; its CSRF token."""
        account = create_account(self.ledger, role.value, role, PASSWORD) if role.value not in self.csrf else None
        if account is not None:
            session = open_session(self.ledger, account, 3600, "127.0.0.1")
            self.csrf[role.value] = f"{session.session_id} {session.csrf}"
        session_id, csrf = self.csrf[role.value].split()
        self.client.cookies.set(SESSION_COOKIE, session_id)
        return csrf


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    config = Config()
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="admin-token-for-tests",
                     sender_settings=SenderSettings())
    with TestClient(create_app(ctx), base_url="http://localhost") as client:
        yield Console(client, ledger, {})
    ledger.close()


def _inputs(page: str) -> dict[str, str]:
    """name → value of every text input, selected option and textarea of a page (what a browser would post)."""
    found: dict[str, str] = {}
    for m in re.finditer(r'<input type="text" name="([^"]+)" id="[^"]*" value="([^"]*)"', page):
        found[html.unescape(m.group(1))] = html.unescape(m.group(2))
    for m in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', m.group(2))
        found[html.unescape(m.group(1))] = html.unescape(chosen.group(1)) if chosen else ""
    for m in re.finditer(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        found[html.unescape(m.group(1))] = html.unescape(m.group(2))
    return found


def _post(console: Console, name: str, fields: dict[str, str], csrf: str) -> str:
    r = console.client.post(f"/console/plugins/{name}", data={**fields, "csrf_token": csrf, "action": "run"})
    assert r.status_code in (200, 422), r.text[:500]
    return r.text


def test_list_names_each_plugin_with_version_and_disclaimer(console: Console) -> None:
    console.sign_in(Role.CLINICIAN)
    page = console.client.get("/console/plugins").text
    for name in PLUGINS:
        assert f'href="/console/plugins/{name}"' in page
    assert "1.0.0" in page and "SYNTHETIC cohort" in page and "aiws-pharmacy-kb" in page


@pytest.mark.parametrize("name", PLUGINS)
def test_form_fields_come_from_the_model_and_the_example_runs(console: Console, name: str) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    page = console.client.get(f"/console/plugins/{name}").text
    assert f'name="csrf_token" value="{csrf}"' in page
    fields = _inputs(page)
    model = {"sepsis": SepsisInput, "pharmacy": PharmacyInput, "or_planning": OrInput, "ed_flow": EdFlowInput}[name]
    for field_name in model.model_fields:  # every top-level field of the model has an input, a table or a group
        assert field_name in fields or f'id="table-{field_name}"' in page or f'id="group-{field_name}"' in page, \
            field_name
    # the form as shown, posted back, is the example document: the form reads what it writes
    assert model.model_validate(values_from_form(form_spec(model), fields)) == model.model_validate(example(name))
    result = _post(console, name, fields, csrf)
    assert 'id="ai-result"' in result and 'id="problems"' not in result
    [row] = console.ledger.list_audit(action_prefix="plugin.run")
    assert row["actor"] == "user:clinician" and row["detail"]["plugin"] == name
    assert row["detail"]["status"] == "ok" and row["detail"]["version"] == "1.0.0"


def test_sepsis_result_shows_scores_categories_items_and_provenance(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    page = _post(console, "sepsis", _inputs(console.client.get("/console/plugins/sepsis").text), csrf)
    news2 = re.search(r'<tr id="score-news2">.*?</tr>', page, re.S)
    assert news2 is not None
    assert '<td class="score">8</td>' in news2.group(0) and "high clinical risk" in news2.group(0)
    qsofa = re.search(r'<tr id="score-qsofa">.*?</tr>', page, re.S)
    assert qsofa is not None and '<td class="score">2</td>' in qsofa.group(0) and "positive" in qsofa.group(0)
    items = re.search(r'<table class="contributions" id="items-news2">.*?</table>', page, re.S)
    assert items is not None and items.group(0).count('class="contributes"') == 5  # RR, SpO2, SBP, pulse, temp
    assert "AI result" in page and "Algorithm: sepsis 1.0.0" in page and "sepsis_risk" in page
    assert "not validated on real patients" in page


def test_pharmacy_flags_per_prescription_with_reason_and_source(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    page = _post(console, "pharmacy", _inputs(console.client.get("/console/plugins/pharmacy").text), csrf)
    rows = re.findall(r'<tr class="([^"]+)" data-drug="([^"]+)">(.*?)</tr>', page, re.S)
    by_drug: dict[str, list[str]] = {}
    for cls, drug, cells in rows:
        by_drug.setdefault(drug, []).append(cls + " " + cells)
    assert set(by_drug) == {"warfarin", "ibuprofen", "amlodipine"}
    assert len(by_drug["ibuprofen"]) == 3  # interaction with warfarin, age, renal
    assert any("interactions.csv" in r and "severity-high" in r for r in by_drug["warfarin"])
    assert any("renal.csv" in r for r in by_drug["ibuprofen"])
    assert by_drug["amlodipine"][0].startswith("no-flag")
    assert "31.4 ml/min" in page


def _gantt(page: str) -> ET.Element:
    m = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="gantt".*?</svg>', page, re.S)
    assert m is not None
    return ET.fromstring(m.group(0))


def test_or_plan_gantt_has_one_bar_per_case_in_its_room_row_in_time_order(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    fields = _inputs(console.client.get("/console/plugins/or_planning").text)
    fields["rooms[2].id"], fields["rooms[2].capacity_minutes"] = "OR3", "240"  # the blank row, filled in
    page = _post(console, "or_planning", fields, csrf)
    out = json.loads(html.unescape(re.search(r'<pre class="mono json">(.*?)</pre>', page, re.S).group(1)))
    assignments = out["assignments"]
    assert len(assignments) == 6 and {a["room"] for a in assignments} <= {"OR1", "OR2", "OR3"}
    svg = _gantt(page)
    rows = svg.findall(f"{SVG}g[@class='room-row']")
    assert [(r.get("data-room"), r.get("data-day")) for r in rows] == [("OR1", "0"), ("OR2", "0"), ("OR3", "0")]
    bars = {}
    for row in rows:
        rects = [r for r in row.findall(f"{SVG}rect") if r.get("class", "").startswith("case")]
        xs = [float(r.get("x")) for r in rects]
        assert xs == sorted(xs)  # in time order, left to right
        starts = [int(r.get("data-start")) for r in rects]
        assert starts == sorted(starts)
        for r in rects:
            assert r.get("data-room") == row.get("data-room")
            bars[r.get("data-case")] = (row.get("data-room"), int(r.get("data-start")), int(r.get("data-end")))
    assert bars == {a["case"]: (a["room"], a["start_minute"], a["end_minute"]) for a in assignments}
    # position and length follow the minutes: x grows with the start, width with the duration
    widths = {r.get("data-case"): float(r.get("width")) for row in rows for r in row.findall(f"{SVG}rect")
              if r.get("data-case")}
    longest = max(assignments, key=lambda a: a["duration_minutes"])
    assert max(widths, key=lambda c: widths[c]) == longest["case"]


def test_ed_forecast_plot_with_intervals_and_daily_table(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    page = console.client.get("/console/plugins/ed_flow").text
    assert 'id="csv-hourly_counts"' in page and page.count('name="hourly_counts[') == 0  # long: CSV, not a table
    result = _post(console, "ed_flow", _inputs(page), csrf)
    m = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="forecast".*?</svg>', result, re.S)
    assert m is not None
    svg = ET.fromstring(m.group(0))
    assert svg.find(f"{SVG}polygon[@class='band95']") is not None and svg.find(f"{SVG}polygon[@class='band80']") \
        is not None
    assert svg.find(f"{SVG}polyline[@class='forecast-mean']").get("data-points") == "168"
    assert svg.find(f"{SVG}polyline[@class='history']").get("data-points") == str(14 * 24)
    assert len(re.findall(r"<tr><td>\d{4}-\d\d-\d\d</td>", result)) >= 7  # the daily table


def test_invalid_field_shows_the_form_again_with_the_message_beside_it(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    fields = _inputs(console.client.get("/console/plugins/pharmacy").text)
    fields["prescriptions[1].route"] = "nose"
    fields["patient.age"] = "abc"
    r = console.client.post("/console/plugins/pharmacy", data={**fields, "csrf_token": csrf, "action": "run"})
    assert r.status_code == 422 and "Traceback" not in r.text and 'id="ai-result"' not in r.text
    route = re.search(r'<td class="has-error"><input type="text" name="prescriptions\[1\]\.route"[^>]*>'
                      r'<span class="field-error">([^<]*)</span>', r.text)
    assert route is not None and "unknown route" in route.group(1)
    assert re.search(r'name="patient\.age"[^>]*value="abc"|value="abc"[^>]*class="invalid"', r.text)
    age = re.search(r'id="field-patient\.age">.*?<span class="field-error">([^<]*)</span>', r.text, re.S)
    assert age is not None and "valid integer" in age.group(1)
    summary = re.search(r'<div class="error" id="problems">.*?</div>', r.text, re.S)
    assert summary is not None  # the summary names each field
    assert re.search(r"<li>prescriptions\[1\]\.route: [^<]*unknown route", summary.group(0))
    assert re.search(r"<li>patient\.age: [^<]*valid integer", summary.group(0))
    [row] = console.ledger.list_audit(action_prefix="plugin.run")
    assert row["detail"]["status"] == "invalid" and "nose" not in json.dumps(row) and "abc" not in json.dumps(row)


def test_add_rows_gives_blank_rows_and_runs_nothing(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    fields = _inputs(console.client.get("/console/plugins/or_planning").text)
    r = console.client.post("/console/plugins/or_planning", data={**fields, "csrf_token": csrf,
                                                                  "action": "add:cases"})
    assert r.status_code == 200 and 'name="cases[9].id"' in r.text and 'name="cases[10].id"' not in r.text
    assert 'value="case-6"' in r.text and console.ledger.list_audit(action_prefix="plugin.run") == []


def test_upload_runs_a_csv_batch_through_the_same_path(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    text = ("ref,age,sex,weight_kg,creatinine_mg_dl,drug,dose_mg,frequency_per_day\n"
            "a,78,female,60,1.4,warfarin,5,1\na,78,female,60,1.4,ibuprofen,400,3\nb,52,male,82,0.9,paracetamol,1000,4\n")
    r = console.client.post("/console/plugins/pharmacy", data={"csrf_token": csrf, "action": "run"},
                            files={"upload": ("batch.csv", text.encode(), "text/csv")})
    assert r.status_code == 200 and r.text.count('class="card result"') == 2 and "from csv input" in r.text
    [row] = console.ledger.list_audit(action_prefix="plugin.run")
    assert row["detail"]["format"] == "csv" and row["detail"]["records"] == 2


def test_roles_and_csrf(console: Console) -> None:
    assert console.client.get("/console/plugins/sepsis", follow_redirects=False).status_code == 303
    csrf = console.sign_in(Role.RADIOLOGIST)
    assert console.client.get("/console/plugins").status_code == 403
    assert console.client.get("/console/plugins/sepsis").status_code == 403
    assert console.client.post("/console/plugins/sepsis", data={"csrf_token": csrf}).status_code == 403
    csrf = console.sign_in(Role.ADMIN)  # admin passes every check
    assert console.client.get("/console/plugins/sepsis").status_code == 200
    fields = _inputs(console.client.get("/console/plugins/sepsis").text)
    assert console.client.post("/console/plugins/sepsis", data={**fields, "csrf_token": "wrong"}).status_code == 403
    assert console.client.post("/console/plugins/sepsis", data={**fields, "csrf_token": csrf}).status_code == 200
    assert [r["actor"] for r in console.ledger.list_audit(action_prefix="plugin.run")] == ["user:admin"]
    assert console.client.get("/console/plugins/nope").status_code == 404


def test_sepsis_history_rows_and_vasopressors_reach_the_model(console: Console) -> None:
    """A table row (history), a date-time and a name=value mapping typed into the form are what the model gets."""
    csrf = console.sign_in(Role.CLINICIAN)
    fields = _inputs(console.client.get("/console/plugins/sepsis").text)
    fields.update({"time": "2024-03-01T12:00", "vasopressors": "norepinephrine=0.05", "map": "62",
                   "history[0].time": "2024-03-01T06:00", "history[0].respiratory_rate": "18",
                   "history[0].heart_rate": "88", "history[0].systolic_bp": "125", "history[0].spo2": "97",
                   "history[0].on_oxygen": "false", "history[0].consciousness": "A",
                   "history[0].temperature_c": "37.0"})
    page = _post(console, "sepsis", fields, csrf)
    trend = re.search(r'<table id="sepsis-trend">.*?</table>', page, re.S)
    assert trend is not None and trend.group(0).count("<tr><td>2024-03-01T") == 2
    assert re.search(r"<tr><td>2024-03-01T06:00:00</td><td>0</td>", trend.group(0))  # NEWS2 0 six hours before
    sofa = re.search(r'<table class="contributions" id="items-sofa">.*?</table>', page, re.S)
    assert sofa is not None
    cardio = re.search(r"<td>cardiovascular</td>\s*<td>([^<]*)</td><td>(\d)</td>", sofa.group(0))
    assert cardio is not None and cardio.group(2) == "3" and "noradrenaline" in cardio.group(1)
    [row] = console.ledger.list_audit(action_prefix="plugin.run")
    assert "demo-ward-bed-4" not in json.dumps(row) and "noradrenaline" not in json.dumps(row)


def test_a_mistyped_history_row_is_named_in_its_cell(console: Console) -> None:
    csrf = console.sign_in(Role.CLINICIAN)
    fields = _inputs(console.client.get("/console/plugins/sepsis").text)
    fields.update({"time": "2024-03-01T12:00", "history[0].time": "2024-03-01T13:00", "history[0].heart_rate": "90"})
    r = console.client.post("/console/plugins/sepsis", data={**fields, "csrf_token": csrf, "action": "run"})
    assert r.status_code == 422
    cell = re.search(r'<td class="has-error"><input type="text" name="history\[0\]\.time"[^>]*>'
                     r'<span class="field-error">([^<]*)</span>', r.text)
    assert cell is not None and "earlier than the latest" in cell.group(1)
