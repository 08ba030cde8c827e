"""Operating-room planning: constraints checked independently of the solver, objectives, predicted
durations, equipment, availability, infeasibility, errors."""
from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from plugins.errors import InvalidInput
from plugins.or_planning.greedy import greedy_lpt
from plugins.or_planning.models import OrInput
from plugins.or_planning.plugin import OrPlanningPlugin
from plugins.or_planning.problem import Problem
from plugins.or_planning.synth import instance
from tests_plugins_helpers import run_doc


def check_schedule(doc: dict[str, Any], out: dict[str, Any]) -> None:
    """Every hard constraint, recomputed from the output alone."""
    rooms = {(r["id"], r.get("day", 0)): r for r in doc["rooms"]}
    cases = {c["id"]: c for c in doc["cases"]}
    surgeons = {s["id"]: s for s in doc.get("surgeons", [])}
    units = {e["id"]: e["units"] for e in doc.get("equipment", [])}
    placed = out["assignments"]
    assert sorted([a["case"] for a in placed] + [c["case"] for c in out["cancelled"]]) == sorted(cases)
    for a in placed:
        room, case = rooms[(a["room"], a["day"])], cases[a["case"]]
        assert a["start_minute"] >= 0 and a["end_minute"] == a["start_minute"] + a["duration_minutes"]
        limit = room["capacity_minutes"] + (room.get("max_overtime_minutes", 240)
                                            if doc.get("objective", "min_overtime") == "min_overtime" else 0)
        assert a["end_minute"] <= limit
        assert a["day"] >= case.get("earliest_day", 0)
        if case.get("latest_day") is not None:
            assert a["day"] <= case["latest_day"]
        days = surgeons.get(case["surgeon"], {}).get("days")
        assert days is None or a["day"] in days
    for x, y in combinations(placed, 2):
        overlap = x["start_minute"] < y["end_minute"] and y["start_minute"] < x["end_minute"]
        if x["day"] == y["day"] and overlap:
            assert x["room"] != y["room"], (x, y)
            assert x["surgeon"] != y["surgeon"], (x, y)
    for eq, cap in units.items():
        using = [a for a in placed if eq in cases[a["case"]].get("equipment", [])]
        for a in using:
            t = a["start_minute"]
            concurrent = [b for b in using if b["day"] == a["day"] and b["start_minute"] <= t < b["end_minute"]]
            assert len(concurrent) <= cap
    ot = sum(max(0, max((a["end_minute"] for a in placed if (a["room"], a["day"]) == key), default=0)
                 - r["capacity_minutes"]) for key, r in rooms.items())
    assert out["overtime_minutes"] == ot


def test_min_overtime_is_optimal_on_a_small_case(or_planning: OrPlanningPlugin) -> None:
    doc = {"rooms": [{"id": "A", "capacity_minutes": 480}, {"id": "B", "capacity_minutes": 480}],
           "cases": [{"id": f"c{i}", "surgeon": f"s{i}", "duration_minutes": 300} for i in range(3)]}
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    assert out["overtime_minutes"] == 120 and out["cancelled"] == []
    assert out["solver"]["status"] == "optimal" and out["solver"]["gap"] == 0.0
    assert out["idle_minutes"] == 480 - 300 + 0 and out["makespan_minutes"] == 600


def test_one_surgeon_is_never_in_two_rooms_at_once(or_planning: OrPlanningPlugin) -> None:
    doc = {"rooms": [{"id": "A", "capacity_minutes": 240, "max_overtime_minutes": 240},
                     {"id": "B", "capacity_minutes": 240, "max_overtime_minutes": 240}],
           "cases": [{"id": "c1", "surgeon": "s", "duration_minutes": 200},
                     {"id": "c2", "surgeon": "s", "duration_minutes": 200}]}
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    a, b = sorted(out["assignments"], key=lambda x: x["start_minute"])
    assert b["start_minute"] >= a["end_minute"] and out["overtime_minutes"] == 160


def test_min_cancellations_keeps_the_most_urgent(or_planning: OrPlanningPlugin) -> None:
    doc = {"objective": "min_cancellations", "rooms": [{"id": "A", "capacity_minutes": 480}],
           "cases": [{"id": "low", "surgeon": "s1", "duration_minutes": 300, "priority": 5},
                     {"id": "urgent", "surgeon": "s2", "duration_minutes": 300, "priority": 1},
                     {"id": "short", "surgeon": "s3", "duration_minutes": 180, "priority": 4}]}
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    assert sorted(a["case"] for a in out["assignments"]) == ["short", "urgent"]
    assert out["overtime_minutes"] == 0 and out["solver"]["objective_value"] == 1.0  # cost of "low" = 6 − 5


def test_equipment_is_a_cumulative_resource(or_planning: OrPlanningPlugin) -> None:
    doc = {"rooms": [{"id": "A", "capacity_minutes": 480}, {"id": "B", "capacity_minutes": 480}],
           "equipment": [{"id": "c-arm", "units": 1}],
           "cases": [{"id": "c1", "surgeon": "s1", "duration_minutes": 200, "equipment": ["c-arm"]},
                     {"id": "c2", "surgeon": "s2", "duration_minutes": 200, "equipment": ["c-arm"]}]}
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    a, b = sorted(out["assignments"], key=lambda x: x["start_minute"])
    assert b["start_minute"] >= a["end_minute"]


def test_days_availability_and_windows(or_planning: OrPlanningPlugin) -> None:
    doc = {"rooms": [{"id": "A", "day": d, "capacity_minutes": 480} for d in range(3)],
           "surgeons": [{"id": "s1", "days": [2]}, {"id": "s2"}],
           "cases": [{"id": "c1", "surgeon": "s1", "duration_minutes": 100},
                     {"id": "c2", "surgeon": "s2", "duration_minutes": 100, "earliest_day": 1, "latest_day": 1}]}
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    assert {a["case"]: a["day"] for a in out["assignments"]} == {"c1": 2, "c2": 1}


def test_durations_from_history(or_planning: OrPlanningPlugin) -> None:
    history = [{"procedure": "hernia repair", "surgeon": "s1", "duration_minutes": d} for d in (50, 60, 70, 80, 90)]
    history += [{"procedure": "hernia repair", "surgeon": "s2", "duration_minutes": d} for d in (100, 120)]
    doc = {"rooms": [{"id": "A", "capacity_minutes": 480}], "history": history,
           "cases": [{"id": "c1", "surgeon": "s1", "procedure": "Hernia repair"},
                     {"id": "c2", "surgeon": "s2", "procedure": "hernia repair"}]}
    out = {a["case"]: a for a in run_doc(or_planning, doc)["assignments"]}
    assert out["c1"]["duration_minutes"] == 70 and "procedure+surgeon" in out["c1"]["duration_source"]
    assert out["c2"]["duration_minutes"] == 80 and "procedure q0.5 (n=7)" in out["c2"]["duration_source"]
    q80 = {a["case"]: a for a in run_doc(or_planning, {**doc, "duration_quantile": 0.8})["assignments"]}
    assert q80["c1"]["duration_minutes"] == 82
    bundled = run_doc(or_planning, {"rooms": [{"id": "A", "capacity_minutes": 480}],
                                    "cases": [{"id": "c", "surgeon": "S3", "procedure": "colectomy"}]})
    assert 140 < bundled["assignments"][0]["duration_minutes"] < 230


def test_no_duration_and_no_history_names_the_case(or_planning: OrPlanningPlugin) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(or_planning, {"rooms": [{"id": "A", "capacity_minutes": 480}], "history": [],
                              "cases": [{"id": "c", "surgeon": "s", "procedure": "heart transplant"}]})
    assert err.value.problems[0].field == "cases[0].duration_minutes"


def test_impossible_case_is_reported_infeasible(or_planning: OrPlanningPlugin) -> None:
    doc = {"rooms": [{"id": "A", "capacity_minutes": 240, "max_overtime_minutes": 60}],
           "cases": [{"id": "long", "surgeon": "s", "duration_minutes": 400},
                     {"id": "ok", "surgeon": "t", "duration_minutes": 100}]}
    out = run_doc(or_planning, doc)
    assert out["solver"]["status"] == "infeasible" and out["solver"]["schedule_from"] == "greedy-lpt"
    assert [c["case"] for c in out["cancelled"]] == ["long"] and "no eligible" in out["cancelled"][0]["reason"]


@pytest.mark.parametrize("objective", ["min_overtime", "min_cancellations"])
def test_generated_instance_is_valid_and_no_worse_than_greedy(or_planning: OrPlanningPlugin, objective: str) -> None:
    doc = instance(50, seed=4, objective=objective, load=1.1, time_limit_seconds=3)
    out = run_doc(or_planning, doc)
    check_schedule(doc, out)
    data = OrInput.model_validate(doc)
    problem = Problem.build(data, [(c.duration_minutes, "given") for c in data.cases])
    greedy, _ = greedy_lpt(problem)
    assert out["solver"]["objective_value"] <= greedy.objective_value(problem)
    assert out["solver"]["status"] in ("optimal", "feasible") and 0 <= out["solver"]["gap"] <= 1
    assert out["solver"]["best_bound"] <= out["solver"]["objective_value"]


@pytest.mark.parametrize(("doc", "field"), [
    ({"rooms": [{"id": "A", "capacity_minutes": 480}],
      "cases": [{"id": "c", "surgeon": "s", "duration_minutes": 60}, {"id": "c", "surgeon": "s", "duration_minutes": 60}]},
     "cases[1].id"),
    ({"rooms": [{"id": "A", "capacity_minutes": 480}], "surgeons": [{"id": "s"}],
      "cases": [{"id": "c", "surgeon": "x", "duration_minutes": 60}]}, "cases[0].surgeon"),
    ({"rooms": [{"id": "A", "capacity_minutes": 0}], "cases": [{"id": "c", "surgeon": "s", "duration_minutes": 60}]},
     "rooms[0].capacity_minutes"),
    ({"rooms": [{"id": "A", "capacity_minutes": 480}], "objective": "min_cost",
      "cases": [{"id": "c", "surgeon": "s", "duration_minutes": 60}]}, "objective"),
])
def test_invalid_input_names_the_field(or_planning: OrPlanningPlugin, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(or_planning, doc)
    assert err.value.problems[0].field == field


def test_csv_is_refused(or_planning: OrPlanningPlugin) -> None:
    with pytest.raises(InvalidInput, match="does not read CSV"):
        run_doc(or_planning, "id,surgeon\nc,s\n", "csv")
