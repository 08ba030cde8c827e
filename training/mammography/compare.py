"""A candidate beside a published version on unseen seeds of both phantom families (issue 28).

``python -m training.mammography.compare RUN [--baseline-version N] [--exams 10] [--seed-a 30000] [--seed-b 60000]``
runs :func:`training.families.evaluate_families` (the service's own analysis through ONNX Runtime, each version
with its own network input and calibration) on the run's candidate (``RUN/export``) and on the baseline version
of the project's model repository (default: the latest, which the service runs), on the same exams, prints both tables and the verdict (:func:`verdict`;
``--require-better`` exits 3 when the candidate may not replace the baseline), and writes ``RUN/cross_family.json``
(the candidate's rows as the model card keeps them, train family -> evaluation family) and
``RUN/comparison.json`` (every row of both). The default seeds are the evaluation seeds of
``configs/families.toml``: never used for training, validation or calibration by either version.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.families import (
    SHIP_MEASURES,
    card_rows,
    eval_seed_start,
    evaluate_families,
    row_values,
    ship_verdict,
    table_lines,
)
from training.mammography.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def compare(run_dir: Path, repo: Path, baseline: int, exams: int, seed_a: int, seed_b: int) -> list[dict[str, Any]]:
    """Rows of the baseline (version *baseline*, 0: the latest published; its train families from its card) and of
    the candidate (its config's families), family a then b."""
    config = load_config(run_dir / "config.json")
    trained = "+".join(config.families)
    rows = []
    for label, where, version, train_family in (("baseline", repo, baseline or None, None),
                                               ("candidate", run_dir / "export", None, trained)):
        for family, start in (("a", seed_a), ("b", seed_b)):
            row = evaluate_families("mammography", where, version, family, exams, seed_start=start,
                                    train_family=train_family)[0]
            rows.append({**row, "role": label})
    return rows


def verdict(rows: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Whether the candidate may replace the baseline, and why: the shared rule (:func:`training.families.ship_verdict`)
    with the mammography measures: better beyond noise on family B (a rate by more than one exam, mass false
    positives per image by more than 0.1, fewer marks in lesion-free breasts) and worse beyond noise on neither
    family. NaN (no lesion) counts as equal. Reasons: family B's line (better or not better), then family A's."""
    baseline, _ = row_values([r for r in rows if r["role"] == "baseline"])
    candidate, cases = row_values([r for r in rows if r["role"] == "candidate"])
    result = ship_verdict(baseline, candidate, SHIP_MEASURES["mammography"], cases, better_on=("b",))
    reasons = []
    for family in ("b", "a"):
        better, worse = result.better.get(family, []), result.worse.get(family, [])
        head = f"family {family.upper()}: " + ("better" if better else "not better" if family == "b" else "held")
        reasons.append(head + "".join(f"; {t}" for t in better)
                       + (f"; worse beyond noise: {'; '.join(worse)}" if worse else ""))
    reasons += [f"family {f.upper()}: not evaluated beside the baseline" for f in result.missing]
    return result.ship, reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.mammography.compare")
    parser.add_argument("run", type=Path)
    parser.add_argument("--repo", type=Path, default=ROOT / "triton_repo")
    parser.add_argument("--baseline-version", type=int, default=0,
                        help="the published version to replace (default 0: the latest, the one the service runs)")
    parser.add_argument("--exams", type=int, default=10, help="exams per family")
    parser.add_argument("--seed-a", type=int, default=eval_seed_start("mammography", "a"))
    parser.add_argument("--seed-b", type=int, default=eval_seed_start("mammography", "b"))
    parser.add_argument("--require-better", action="store_true",
                        help="exit 3 unless the candidate may replace the baseline (verdict)")
    args = parser.parse_args(argv)
    rows = compare(args.run, args.repo, args.baseline_version, args.exams, args.seed_a, args.seed_b)
    for role in ("baseline", "candidate"):
        sys.stdout.write(f"--- {role}\n" + "\n".join(table_lines([r for r in rows if r["role"] == role])) + "\n")
    (args.run / "comparison.json").write_text(json.dumps(rows, indent=2, default=str))
    (args.run / "cross_family.json").write_text(json.dumps(card_rows([r for r in rows if r["role"] == "candidate"]),
                                                           indent=2))
    ok, reasons = verdict(rows)
    sys.stdout.write("\n".join(["verdict: " + ("candidate may replace the baseline" if ok else "keep the baseline"),
                                *reasons]) + "\n")
    return 0 if ok or not args.require_better else 3


if __name__ == "__main__":
    sys.exit(main())
