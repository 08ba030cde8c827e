"""A candidate beside a published version on unseen seeds of both phantom families (issue 28).

``python -m training.mammography.compare RUN [--baseline-version 1] [--exams 10] [--seed-a 30000] [--seed-b 60000]``
runs :func:`training.families.evaluate_families` (the service's own analysis through ONNX Runtime, each version
with its own network input and calibration) on the run's candidate (``RUN/export``) and on the baseline version
of the project's model repository, on the same exams, prints both tables and the verdict (:func:`verdict`;
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

from training.families import card_rows, evaluate_families, table_lines
from training.mammography.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def compare(run_dir: Path, repo: Path, baseline: int, exams: int, seed_a: int, seed_b: int) -> list[dict[str, Any]]:
    """Rows of the baseline (train family a) and of the candidate (its config's families), family a then b."""
    config = load_config(run_dir / "config.json")
    trained = "+".join(config.families)
    rows = []
    for label, where, version, train_family in (("baseline", repo, baseline, "a"),
                                               ("candidate", run_dir / "export", None, trained)):
        for family, start in (("a", seed_a), ("b", seed_b)):
            row = evaluate_families("mammography", where, version, family, exams, seed_start=start,
                                    train_family=train_family)[0]
            rows.append({**row, "role": label})
    return rows


def verdict(rows: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Whether the candidate may replace the baseline, and why: better on family B (more of the issue's bars met,
    or as many with fewer false-positive mass marks per image and no lower mass sensitivity) and not worse on
    family A beyond one exam's worth of noise (each rate within 1/exams of the baseline's, mass false positives
    per image within 0.1, lesion-free marks not more). NaN (no lesion) counts as equal."""
    def row(role: str, family: str) -> dict[str, Any]:
        return next(r for r in rows if r["role"] == role and r["family"] == family)

    def value(r: dict[str, Any], name: str) -> float:
        v = r["measured"].get(name)
        return float("nan") if v is None else float(v)

    def met(r: dict[str, Any]) -> int:
        return sum(b["met"] for b in r["bars"].values())

    reasons: list[str] = []
    base_b, cand_b = row("baseline", "b"), row("candidate", "b")
    fewer_fp = value(cand_b, "mass_fp_per_image") < value(base_b, "mass_fp_per_image")
    sens_ok = not value(cand_b, "mass_sensitivity") < value(base_b, "mass_sensitivity")
    better_b = met(cand_b) > met(base_b) or (met(cand_b) == met(base_b) and fewer_fp and sens_ok)
    reasons.append(f"family B: bars met {met(base_b)} -> {met(cand_b)}, mass FP/image "
                   f"{value(base_b, 'mass_fp_per_image'):.2f} -> {value(cand_b, 'mass_fp_per_image'):.2f}: "
                   f"{'better' if better_b else 'not better'}")
    base_a, cand_a = row("baseline", "a"), row("candidate", "a")
    noise = 1.0 / max(1, len(cand_a["seeds"]))
    worse_a = []
    for name in ("density_agreement", "density_within_one_grade", "mass_sensitivity"):
        if value(cand_a, name) < value(base_a, name) - noise - 1e-9:
            worse_a.append(f"{name} {value(base_a, name):.3f} -> {value(cand_a, name):.3f}")
    if value(cand_a, "mass_fp_per_image") > value(base_a, "mass_fp_per_image") + 0.1 + 1e-9:
        worse_a.append(f"mass_fp_per_image {value(base_a, 'mass_fp_per_image'):.3f} -> "
                       f"{value(cand_a, 'mass_fp_per_image'):.3f}")
    if value(cand_a, "marks_in_lesion_free_breasts") > value(base_a, "marks_in_lesion_free_breasts"):
        worse_a.append("marks_in_lesion_free_breasts "
                       f"{value(base_a, 'marks_in_lesion_free_breasts'):.0f} -> "
                       f"{value(cand_a, 'marks_in_lesion_free_breasts'):.0f}")
    reasons.append("family A: " + ("worse beyond noise: " + "; ".join(worse_a) if worse_a else "not worse beyond noise"))
    return better_b and not worse_a, reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.mammography.compare")
    parser.add_argument("run", type=Path)
    parser.add_argument("--repo", type=Path, default=ROOT / "triton_repo")
    parser.add_argument("--baseline-version", type=int, default=1)
    parser.add_argument("--exams", type=int, default=10, help="exams per family")
    parser.add_argument("--seed-a", type=int, default=30_000)
    parser.add_argument("--seed-b", type=int, default=60_000)
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
