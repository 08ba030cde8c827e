"""Plugin benchmark: records per second of the sepsis and pharmacy plugins on generated records
(end to end: JSON bytes → parse → validate → run → JSON, in batches, beside the compute-only rate),
and CP-SAT against the greedy longest-processing-time-first baseline on generated operating-room
instances of 10, 50 and 200 cases (time, objective, bound and optimality gap).

Run: ``make bench`` or ``.venv/bin/python bench/plugins.py [--records 100000] [--time-limit 10]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.or_planning.greedy import greedy_lpt
from plugins.or_planning.models import OrInput
from plugins.or_planning.plugin import OrPlanningPlugin
from plugins.or_planning.problem import Problem
from plugins.or_planning.synth import instance
from plugins.pharmacy.plugin import PharmacyPlugin
from plugins.runner import run_plugin
from plugins.sepsis.plugin import SepsisPlugin

BATCH = 5000


def sepsis_records(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Plausible ward observations; about one in five lacks its laboratory values."""
    out = []
    for i in range(n):
        rec: dict[str, Any] = {
            "respiratory_rate": int(rng.integers(8, 35)), "spo2": int(rng.integers(84, 101)),
            "on_oxygen": bool(rng.random() < 0.2), "systolic_bp": int(rng.integers(70, 200)),
            "heart_rate": int(rng.integers(40, 150)), "consciousness": str(rng.choice(list("AAAAAAACVPU"))),
            "temperature_c": round(float(rng.normal(37.2, 0.9)), 1), "gcs": int(rng.choice([15] * 8 + [14, 12, 9])),
        }
        if i % 5:
            rec.update({"pao2_fio2": int(rng.integers(80, 500)), "on_respiratory_support": bool(rng.random() < 0.1),
                        "platelets": int(rng.integers(10, 400)), "bilirubin_mg_dl": round(float(rng.gamma(2, 0.5)), 1),
                        "map": int(rng.integers(50, 110)), "creatinine_mg_dl": round(0.3 + float(rng.gamma(3, 0.4)), 2),
                        "wbc": round(float(rng.gamma(4, 2.2)), 1)})
        out.append(rec)
    return out


def pharmacy_records(n: int, rng: np.random.Generator, plugin: PharmacyPlugin) -> list[dict[str, Any]]:
    """Reviews of 1–8 prescriptions drawn from the knowledge base, with typical doses."""
    drugs = sorted(plugin.kb.drugs)
    doses = {r.atc: r for r in plugin.kb.doses if r.max_single_mg}
    out = []
    for _ in range(n):
        rx = []
        for atc in rng.choice(drugs, size=int(rng.integers(1, 9)), replace=False):
            rule = doses.get(str(atc))
            line: dict[str, Any] = {"atc": str(atc)}
            if rule and rule.max_single_mg:
                line.update({"dose_mg": round(rule.max_single_mg * float(rng.uniform(0.3, 1.2)), 3),
                             "frequency_per_day": int(rng.integers(1, 5)), "route": rule.route})
            rx.append(line)
        out.append({"patient": {"age": int(rng.integers(18, 100)), "sex": str(rng.choice(["female", "male"])),
                                "weight_kg": round(float(rng.normal(75, 15)), 1),
                                "creatinine_mg_dl": round(float(rng.gamma(3, 0.4)) + 0.3, 2)},
                    "prescriptions": rx, "allergies": ["penicillin"] if rng.random() < 0.1 else []})
    return out


def throughput(plugin: Any, records: list[dict[str, Any]]) -> tuple[float, float]:
    """(end-to-end records/s, compute-only records/s), over batches of ``BATCH`` records."""
    end_to_end = compute = 0.0
    for i in range(0, len(records), BATCH):
        chunk = records[i:i + BATCH]
        data = json.dumps(chunk).encode()
        t0 = time.perf_counter()
        body = run_plugin(plugin, data).body()
        json.dumps(body)
        end_to_end += time.perf_counter() - t0
        items = [plugin.input_model.model_validate(r) for r in chunk]
        t0 = time.perf_counter()
        plugin.run_batch(items)
        compute += time.perf_counter() - t0
    return len(records) / end_to_end, len(records) / compute


def bench_or(sizes: list[int], loads: list[float], time_limit: float, workers: int) -> None:
    plugin = OrPlanningPlugin()
    print(f"\nOR planning: CP-SAT ({workers} workers, limit {time_limit:g} s) vs greedy LPT on generated instances "
          "(load = total case minutes / session minutes)")
    print(f"{'load':>4} {'cases':>5} {'objective':<18} {'greedy obj':>10} {'greedy s':>8} {'CP-SAT obj':>10} {'bound':>7} "
          f"{'gap':>7} {'status':<9} {'CP-SAT s':>8} {'obj ratio':>9}")
    for load, n, objective in ((lo, n, o) for lo in loads for n in sizes for o in ("min_overtime", "min_cancellations")):
        doc = instance(n, seed=n, objective=objective, load=load, time_limit_seconds=time_limit) | {"workers": workers}
        data = OrInput.model_validate(doc)
        problem = Problem.build(data, [(c.duration_minutes or 0, "given") for c in data.cases])
        t0 = time.perf_counter()
        greedy, _ = greedy_lpt(problem)
        g_s = time.perf_counter() - t0
        g_obj = greedy.objective_value(problem)
        s = plugin.run(data).solver
        ratio = f"{s.objective_value / g_obj:.3f}" if g_obj and s.objective_value is not None else "-"
        print(f"{load:>4g} {n:>5} {objective:<18} {g_obj:>10} {g_s:>8.3f} {s.objective_value!s:>10} "
              f"{s.best_bound!s:>7} {s.gap if s.gap is None else f'{s.gap:.2%}'!s:>7} {s.status:<9} "
              f"{s.wall_seconds:>8.2f} {ratio:>9}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--loads", type=float, nargs="+", default=[1.1, 1.3])
    parser.add_argument("--skip-throughput", action="store_true", help="only the operating-room part")
    args = parser.parse_args()
    if not args.skip_throughput:
        bench_throughput(args.records)
    bench_or(args.sizes, args.loads, args.time_limit, args.workers)
    return 0


def bench_throughput(n_records: int) -> None:
    rng = np.random.default_rng(0)
    sepsis, pharmacy = SepsisPlugin(), PharmacyPlugin()
    print(f"records/s on {n_records} generated records (batches of {BATCH}; end to end = JSON in, JSON out)")
    print(f"{'plugin':<9} {'end to end':>11} {'compute only':>13} {'overhead':>9}")
    for name, plugin, records in (("sepsis", sepsis, sepsis_records(n_records, rng)),
                                  ("pharmacy", pharmacy, pharmacy_records(n_records, rng, pharmacy))):
        e2e, comp = throughput(plugin, records)
        print(f"{name:<9} {e2e:>11.0f} {comp:>13.0f} {comp / e2e:>8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
