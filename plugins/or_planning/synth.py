"""Synthetic operating-room data: the bundled duration history (``data/history.csv``) and
generated planning instances for tests and the benchmark. Nothing here is real data."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

BUNDLED = Path(__file__).resolve().parent / "data" / "history.csv"

#: procedure → median minutes (log-normal, sigma 0.2) of the synthetic history
PROCEDURES = {"appendectomy": 60, "cholecystectomy": 75, "hernia repair": 55, "hip replacement": 110,
              "knee replacement": 105, "colectomy": 180, "hysterectomy": 120, "thyroidectomy": 110,
              "carpal tunnel release": 25, "arthroscopy": 45}
SURGEON_FACTOR = {f"S{i}": f for i, f in enumerate((0.85, 0.92, 1.0, 1.0, 1.05, 1.1, 1.15, 1.2), start=1)}


def write_history(path: Path = BUNDLED, per_procedure: int = 32, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    surgeons = list(SURGEON_FACTOR)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["procedure", "surgeon", "duration_minutes"])
        for proc, median in PROCEDURES.items():
            for _ in range(per_procedure):
                s = surgeons[rng.integers(len(surgeons))]
                w.writerow([proc, s, round(float(median * SURGEON_FACTOR[s] * np.exp(rng.normal(0, 0.2))), 1)])


def instance(n_cases: int, seed: int = 0, objective: str = "min_overtime", load: float = 1.0,
             time_limit_seconds: float = 5.0) -> dict[str, Any]:
    """A planning instance of ``n_cases`` cases at about ``load`` × the session capacity."""
    rng = np.random.default_rng(seed)
    days = max(1, math.ceil(n_cases / 40))
    procs = list(PROCEDURES)
    durations = [int(PROCEDURES[procs[rng.integers(len(procs))]] * np.exp(rng.normal(0, 0.25))) + 5 for _ in range(n_cases)]
    rooms_per_day = max(1, math.ceil(sum(durations) / (days * 480 * load)))
    n_surgeons = max(2, math.ceil(n_cases / 4))
    surgeons = [{"id": f"S{i + 1}", "days": sorted(int(d) for d in rng.choice(days, size=max(1, math.ceil(days * 0.7)),
                                                                                   replace=False))}
                for i in range(n_surgeons)]
    cases = []
    for i, dur in enumerate(durations):
        s = surgeons[rng.integers(n_surgeons)]
        cases.append({"id": f"C{i + 1:03d}", "surgeon": s["id"], "duration_minutes": dur,
                      "priority": int(rng.integers(1, 6)), "earliest_day": int(min(s["days"]))})
    return {"rooms": [{"id": f"OR{r + 1}", "day": d, "capacity_minutes": 480, "max_overtime_minutes": 240}
                      for d in range(days) for r in range(rooms_per_day)],
            "cases": cases, "surgeons": surgeons, "objective": objective, "time_limit_seconds": time_limit_seconds}


if __name__ == "__main__":
    write_history()
