"""The tabular examples ``make demo`` posts to the running service (``POST /api/plugins/{name}``), one per
plugin, and the key figures it shows from each answer. Synthetic inputs only (no real person)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

SEPSIS_VITALS = {"ref": "demo-ward-bed-4", "respiratory_rate": 23, "spo2": 94, "on_oxygen": False,
                 "systolic_bp": 98, "heart_rate": 112, "consciousness": "A", "temperature_c": 38.6}
PHARMACY_CSV = ("ref,age,sex,weight_kg,creatinine_mg_dl,drug,dose_mg,frequency_per_day\n"
                "demo-a,78,female,60,1.4,warfarin,5,1\n"
                "demo-a,78,female,60,1.4,ibuprofen,400,3\n"
                "demo-b,52,male,82,0.9,paracetamol,1000,4\n")
OR_LIST = {"rooms": [{"id": "OR1", "capacity_minutes": 480}, {"id": "OR2", "capacity_minutes": 480}],
           "cases": [{"id": f"case-{i + 1}", "surgeon": f"surgeon-{i % 3 + 1}", "duration_minutes": minutes,
                      "priority": 1 + i % 5} for i, minutes in enumerate((120, 90, 200, 150, 60, 240))],
           "time_limit_seconds": 10}


@dataclass(frozen=True)
class Example:
    """One plugin run: what is posted, and how its answer is summed up in the table."""

    plugin: str
    description: str
    body: bytes
    content_type: str
    figures: Callable[[Any], str]


def _sepsis(out: dict[str, Any]) -> str:
    risk = out.get("risk") or {}
    p = risk.get("probability")
    return (f"NEWS2 {out['news2']['total']} ({out['news2']['risk']}), qSOFA {out['qsofa']['total']}"
            + (f", 6 h risk {100 * p:.0f} %" if p is not None else ""))


def _pharmacy(out: list[dict[str, Any]]) -> str:
    first = min(out, key=lambda o: o.get("triage_rank") or 0)
    alerts = first.get("alerts", [])
    worst = alerts[0]["severity"] if alerts else "none"
    return (f"{len(out)} patients; first: CrCl {first.get('creatinine_clearance_ml_min')} ml/min, "
            f"{len(alerts)} alerts (worst {worst})")


def _ed_flow(out: dict[str, Any]) -> str:
    hourly = out["forecast"]["hourly"]
    better = "beats" if out.get("backtest", {}).get("beats_baseline") else "does not beat"
    return f"next 24 h: {sum(h['mean'] for h in hourly[:24]):.0f} arrivals expected; {better} the naive forecast"


def _or_planning(out: dict[str, Any]) -> str:
    return str(out["explanation"][0])


def examples() -> list[Example]:
    """The four examples, in the order of the table."""
    history = (ROOT / "plugins" / "ed_flow" / "data" / "history.csv").read_bytes()
    return [
        Example("sepsis", "vital signs, one patient", json.dumps(SEPSIS_VITALS).encode(), "application/json",
                _sepsis),
        Example("pharmacy", "prescriptions, CSV", PHARMACY_CSV.encode(), "text/csv", _pharmacy),
        Example("ed_flow", "ED arrivals, 16 weeks, CSV", history, "text/csv", _ed_flow),
        Example("or_planning", "6 cases, 2 theatres", json.dumps(OR_LIST).encode(), "application/json",
                _or_planning),
    ]


@dataclass(frozen=True)
class PluginRun:
    example: Example
    ok: bool
    figures: str
    seconds: float


def run_example(base_url: str, example: Example, token: str = "") -> PluginRun:
    """POST *example* to the service at *base_url* (with the API *token*: plugins need the clinician or admin
    role); a refused or failed run is reported, not raised."""
    start = time.monotonic()
    try:
        r = httpx.post(f"{base_url}/api/plugins/{example.plugin}", content=example.body,
                       headers={"Content-Type": example.content_type, "Authorization": f"Bearer {token}"},
                       timeout=120)
    except httpx.HTTPError as exc:
        return PluginRun(example, False, f"no answer ({type(exc).__name__})", time.monotonic() - start)
    seconds = time.monotonic() - start
    if r.status_code != 200:
        return PluginRun(example, False, f"HTTP {r.status_code}", seconds)
    try:
        return PluginRun(example, True, example.figures(r.json()), seconds)
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # an answer of another shape: still a result
        return PluginRun(example, True, f"answered (figures not read: {type(exc).__name__})", seconds)
