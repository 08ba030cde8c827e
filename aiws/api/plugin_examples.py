"""The example input each console form is filled with (synthetic values, no real person), so that a form
works as shown: the same cases as ``scripts/demo_plugins.py``, as the flat JSON documents the forms edit."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import plugins

ED_HISTORY = Path(plugins.__file__).resolve().parent / "ed_flow" / "data" / "history.csv"


def _ed_flow() -> dict[str, Any]:
    with ED_HISTORY.open(newline="", encoding="utf-8") as f:
        counts = [{"hour": row["hour"], "count": int(row["count"])} for row in csv.DictReader(f)]
    return {"hourly_counts": counts, "horizon_hours": 168, "backtest_origins": 4}


def example(name: str) -> dict[str, Any]:
    """The example input of plugin *name*; ``{}`` for a plugin without one (a third-party plugin)."""
    if name == "sepsis":
        return {"ref": "demo-ward-bed-4", "respiratory_rate": 23, "spo2": 94, "on_oxygen": False,
                "systolic_bp": 98, "heart_rate": 112, "consciousness": "A", "temperature_c": 38.6}
    if name == "pharmacy":
        return {"ref": "demo-a", "patient": {"age": 78, "sex": "female", "weight_kg": 60, "creatinine_mg_dl": 1.4},
                "prescriptions": [{"drug": "warfarin", "dose_mg": 5, "frequency_per_day": 1, "route": "oral"},
                                  {"drug": "ibuprofen", "dose_mg": 400, "frequency_per_day": 3, "route": "oral"},
                                  {"drug": "amlodipine", "dose_mg": 5, "frequency_per_day": 1, "route": "oral"}]}
    if name == "or_planning":
        cases = [{"id": f"case-{i + 1}", "surgeon": f"surgeon-{i % 3 + 1}", "duration_minutes": minutes,
                  "priority": 1 + i % 5} for i, minutes in enumerate((120, 90, 200, 150, 60, 240))]
        return {"rooms": [{"id": "OR1", "capacity_minutes": 480}, {"id": "OR2", "capacity_minutes": 480}],
                "cases": cases, "objective": "min_overtime", "time_limit_seconds": 5}
    if name == "ed_flow":
        return _ed_flow()
    return {}
