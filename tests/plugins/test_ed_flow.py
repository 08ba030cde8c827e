"""ED flow: Erlang C against the textbook formula, the forecast against the seasonal naive on the
bundled history, interval coverage, Little's law, input forms and errors."""
from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugins.ed_flow import forecast as fc
from plugins.ed_flow.plugin import EdFlowPlugin
from plugins.ed_flow.queueing import erlang_c, erlang_c_direct, min_servers
from plugins.ed_flow.synth import BUNDLED, SynthSpec, expected_rate, hourly_counts
from plugins.errors import InvalidInput
from tests_plugins_helpers import fhir_bundle, run_doc


def test_erlang_c_textbook_example() -> None:
    res = erlang_c(arrival_rate_per_hour=2, service_rate_per_hour=1, servers=3)   # a = 2, c = 3
    assert res.p_wait == pytest.approx(4 / 9) and res.lq == pytest.approx(8 / 9)
    assert res.wq_minutes == pytest.approx(8 / 9 / 2 * 60) and res.utilization == pytest.approx(2 / 3)


@pytest.mark.parametrize(("lam", "mu", "c"), [(5, 2, 3), (9.5, 1, 10), (30, 2.5, 13), (0.5, 1, 1), (40, 1.2, 40)])
def test_erlang_c_recursion_equals_formula(lam: float, mu: float, c: int) -> None:
    assert erlang_c(lam, mu, c).p_wait == pytest.approx(erlang_c_direct(lam, mu, c), rel=1e-9)


def test_unstable_queue() -> None:
    res = erlang_c(10, 2, 5)  # ρ = 1
    assert not res.stable and res.lq is None and res.wq_minutes is None


@pytest.mark.parametrize(("lam", "mu", "target"), [(12, 2.5, 10), (12, 2.5, 1), (3, 0.5, 30), (100, 3, 5)])
def test_min_servers_is_the_smallest(lam: float, mu: float, target: float) -> None:
    c = min_servers(lam, mu, target)
    assert erlang_c(lam, mu, c).wq_minutes <= target
    below = erlang_c(lam, mu, c - 1) if c > 1 else None
    assert below is None or not below.stable or below.wq_minutes > target


def _bundled_counts() -> dict[str, Any]:
    with BUNDLED.open(newline="") as fh:
        return {"hourly_counts": [{"hour": r["hour"], "count": int(r["count"])} for r in csv.DictReader(fh)]}


def test_forecast_beats_seasonal_naive_on_the_bundled_history(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, BUNDLED.read_text(), "text/csv")
    bt = out["backtest"]
    assert bt["status"] == "computed" and bt["origins"] == 4 and bt["beats_baseline"] is True
    assert bt["model"]["mase_hourly"] < bt["seasonal_naive"]["mase_hourly"]
    assert bt["model"]["mae_hourly"] < bt["seasonal_naive"]["mae_hourly"]
    assert bt["model"]["mape_daily_percent"] < bt["seasonal_naive"]["mape_daily_percent"]
    assert bt["model"]["mae_daily"] < bt["seasonal_naive"]["mae_daily"]
    assert 2 < bt["model"]["mape_daily_percent"] < 15   # published daily MAPE is roughly 5–12 %
    assert out == run_doc(ed_flow, _bundled_counts())  # CSV and JSON agree


def test_forecast_shape_intervals_and_daily_totals(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, {**_bundled_counts(), "horizon_hours": 30, "backtest_origins": 0})
    f = out["forecast"]
    assert len(f["hourly"]) == 30 and f["hourly"][0]["hour"] == "2024-04-22T00:00:00"
    for h in f["hourly"]:
        assert h["lo95"] <= h["lo80"] <= h["mean"] <= h["hi80"] <= h["hi95"]
    assert [d["hours"] for d in f["daily"]] == [24, 6]
    assert f["daily"][0]["mean"] == pytest.approx(sum(h["mean"] for h in f["hourly"][:24]), abs=0.01)
    assert out["backtest"]["status"] == "not computed"


def test_interval_coverage_on_a_held_out_fortnight() -> None:
    spec = SynthSpec(weeks=12, seed=3)
    hours, counts = hourly_counts(spec)
    cut = len(counts) - 2 * 168
    model = fc.fit(hours[:cut], counts[:cut], frozenset(spec.holidays))
    mean = fc.predict(model, hours[cut:], frozenset(spec.holidays))
    actual = counts[cut:]
    lo80, hi80 = fc.quantiles(mean, model.alpha, 0.10), fc.quantiles(mean, model.alpha, 0.90)
    lo95, hi95 = fc.quantiles(mean, model.alpha, 0.025), fc.quantiles(mean, model.alpha, 0.975)
    assert 0.75 <= np.mean((actual >= lo80) & (actual <= hi80)) <= 0.95
    assert 0.92 <= np.mean((actual >= lo95) & (actual <= hi95)) <= 1.0
    truth = expected_rate(spec, hours[cut:])
    assert np.mean(np.abs(mean - truth) / truth) < 0.1  # recovers the simulated rate


def test_arrivals_fhir_and_counts_agree_and_littles_law(ed_flow: EdFlowPlugin) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)  # FHIR dateTime with a time needs a zone
    arrivals = [start + timedelta(hours=h, minutes=m) for h in range(21 * 24) for m in (5, 20, 35, 50)]
    los = [3.0] * len(arrivals)
    flat = run_doc(ed_flow, {"arrivals": [a.isoformat() for a in arrivals], "length_of_stay_hours": los,
                             "horizon_hours": 24, "backtest_origins": 1})
    occ = flat["occupancy"]
    assert occ["mean_arrivals_per_hour"] == pytest.approx(4, abs=0.01)
    assert occ["expected_occupancy"] == pytest.approx(12, abs=0.05)          # L = λW = 4 × 3
    assert occ["hourly"] == pytest.approx([12] * 24, abs=0.05) and occ["peak"] == pytest.approx(12, abs=0.05)
    counts = run_doc(ed_flow, {"hourly_counts": [{"hour": (start + timedelta(hours=h)).isoformat(), "count": 4}
                                                 for h in range(21 * 24)], "length_of_stay_hours": los,
                               "horizon_hours": 24, "backtest_origins": 1})
    assert counts == flat
    encounters = [{"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                   "period": {"start": a.isoformat(), "end": (a + timedelta(hours=3)).isoformat()}}
                  for i, a in enumerate(arrivals[:4 * 24 * 14])]
    encounters.append({"resourceType": "Encounter", "id": "inpatient", "status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                       "period": {"start": "2024-01-02T10:00:00+00:00"}})
    short = {"arrivals": [a.isoformat() for a in arrivals[:4 * 24 * 14]], "length_of_stay_hours": los[:4 * 24 * 14]}
    assert run_doc(ed_flow, fhir_bundle(encounters)) == run_doc(ed_flow, short)


def test_staffing_helper(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, {"queue": {"arrival_rate_per_hour": 12, "service_rate_per_hour": 2.5, "servers": 6,
                                      "target_wait_minutes": 10}})
    s = out["staffing"]
    expected = erlang_c(12, 2.5, 6)
    assert s["erlang_c"]["p_wait"] == pytest.approx(expected.p_wait, abs=1e-6)
    assert s["min_servers"] == min_servers(12, 2.5, 10)
    assert out["forecast"] is None and any("servers" in line for line in out["explanation"])
    hourly = run_doc(ed_flow, {**_bundled_counts(), "horizon_hours": 24, "backtest_origins": 0,
                               "queue": {"service_rate_per_hour": 1.5, "target_wait_minutes": 15}})["staffing"]
    assert len(hourly["hourly_min_servers"]) == 24 and max(hourly["hourly_min_servers"]) == hourly["min_servers"]


def test_short_history_is_not_computed(ed_flow: EdFlowPlugin) -> None:
    start = datetime(2024, 1, 1)
    out = run_doc(ed_flow, {"hourly_counts": [{"hour": (start + timedelta(hours=h)).isoformat(), "count": 3}
                                              for h in range(200)], "mean_length_of_stay_hours": 4})
    assert out["forecast"]["status"] == "not computed" and "2 weeks" in out["forecast"]["reason"]
    assert out["occupancy"]["status"] == "not computed"


@pytest.mark.parametrize(("doc", "field"), [
    ({"hourly_counts": [{"hour": "2024-01-01T00:00", "count": 1}, {"hour": "2024-01-01T02:00", "count": 1}]},
     "hourly_counts[1].hour"),
    ({"hourly_counts": [{"hour": "2024-01-01T00:30", "count": 1}]}, "hourly_counts[0].hour"),
    ({"hourly_counts": [{"hour": "2024-01-01T00:00", "count": -1}]}, "hourly_counts[0].count"),
    ({"arrivals": ["2024-01-01T00:00"], "length_of_stay_hours": [2, -1]}, "length_of_stay_hours[1]"),
    ({"queue": {"service_rate_per_hour": 2}}, "queue.arrival_rate_per_hour"),
    ({"arrivals": ["2024-01-01T00:00"], "horizon_hours": 0}, "horizon_hours"),
    ({"arrivals": ["0001-01-01T00:00", "9999-12-31T23:00"]}, "arrivals"),  # refused at once, not 16 GB of hours
])
def test_invalid_input_names_the_field(ed_flow: EdFlowPlugin, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(ed_flow, doc)
    assert err.value.problems[0].field == field


def test_bundled_history_is_documented_and_small() -> None:
    assert BUNDLED.stat().st_size < 200_000
    assert (Path(BUNDLED).parent / "README.md").exists()


# REFERENCE.md (ED flow): every forecast must beat the seasonal naive (same hour last week) and report it beside
# itself; when it does not, the baseline is served and the output says so. Intervals of the seasonal naive:
# Hyndman & Athanasopoulos, Forecasting: Principles and Practice (3rd ed.), section 5.5, Table 5.2.
def _weekly_pattern_counts(weeks: int = 5) -> dict[str, Any]:
    """A history that repeats exactly every week, with a Monday 10:00 surge the GLM's terms (hour of day,
    day of week, hour x weekend) cannot express: same-hour-last-week is exact, the GLM is not."""
    start = datetime(2024, 1, 1)  # a Monday
    rows = []
    for h in range(weeks * 168):
        t = start + timedelta(hours=h)
        count = 3 + (t.hour % 5) + (40 if t.weekday() == 0 and t.hour == 10 else 0) + (t.weekday() == 3) * 2
        rows.append({"hour": t.isoformat(), "count": count})
    return {"hourly_counts": rows}


def test_seasonal_naive_is_served_when_the_model_loses_to_it(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, {**_weekly_pattern_counts(), "horizon_hours": 200, "backtest_origins": 2,
                            "mean_length_of_stay_hours": 3})
    bt, f = out["backtest"], out["forecast"]
    assert bt["beats_baseline"] is False and bt["seasonal_naive"]["mae_hourly"] == 0
    assert f["served"] == "seasonal_naive" and f["model"].startswith("seasonal naive")
    assert f["notice"].startswith("SEASONAL NAIVE BASELINE SERVED") and out["explanation"][0] == f["notice"]
    last_week = [r["count"] for r in _weekly_pattern_counts()["hourly_counts"][-168:]]
    assert [h["mean"] for h in f["hourly"][:168]] == last_week                 # same hour last week
    assert [h["mean"] for h in f["hourly"][168:]] == last_week[:32]            # repeated past one week
    monday_10 = f["hourly"][10]
    assert monday_10["mean"] == 3 + 0 + 40 and monday_10["lo95"] <= monday_10["lo80"] <= 43 <= monday_10["hi80"]
    assert f["dispersion_alpha"] is None
    assert out["occupancy"]["mean_arrivals_per_hour"] == pytest.approx(np.mean([h["mean"] for h in f["hourly"]]),
                                                                       abs=1e-3)


def test_model_served_without_backtest_says_it_is_unchecked(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, {**_bundled_counts(), "horizon_hours": 24, "backtest_origins": 0})
    f = out["forecast"]
    assert f["served"] == "model" and "WITHOUT a check" in f["notice"] and f["notice"] in out["explanation"]


def test_model_served_when_it_beats_the_baseline(ed_flow: EdFlowPlugin) -> None:
    out = run_doc(ed_flow, {**_bundled_counts(), "horizon_hours": 24, "backtest_origins": 1})
    assert out["backtest"]["beats_baseline"] is True
    assert out["forecast"]["served"] == "model" and "beat the seasonal naive" in out["forecast"]["notice"]
