"""Cross-family evaluation of a cardiac run beside a published version (issue 28), per stage.

``python -m training.cardiac_mri.cross_family RUN --seeds 10000:10020 --baseline triton_repo:1`` renders each
unseen phantom of both families once (A :mod:`.phantom`, B :mod:`.phantom_b`), runs the run's ONNX candidate and
the baseline through ONNX Runtime (as the service runs them) with the service's post-processing, and reports per
family: the issue-28 bars (EF within 3 points in >= 95 %, EDV and ESV within 10 %), the mean absolute errors,
ED/ES phase agreement, and the network's Dice per label against the truth labels (where the errors come from:
the truth labels through the same post-processing and method of discs reproduce the truth volumes exactly, so a
volume error is a segmentation error). Writes ``RUN/evaluation.json`` with the card's "train family -> evaluation
family" rows (``aiws export RUN`` puts them in the model card) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.cardiac_mri.function import cardiac_function
from training.cardiac_mri.evaluate import EVAL_SEED_START, segment_cine
from training.cardiac_mri.phantom import masks_from_labels
from training.families import SHIP_MEASURES, ship_verdict

FAMILIES = ("A", "B")
LABELS = {"lv": 1, "myo": 2, "rv": 3}


@dataclass(frozen=True)
class Model:
    """A model to evaluate: its repository, version (None = latest) and what it was trained on."""

    repo: Path
    version: int | None
    trained_on: str


def _phantom(family: str, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """(images, truth labels, (geometry, heart rate, BSA)) of a phantom."""
    if family == "A":
        from models.cardiac_mri.function import bsa_mosteller_m2
        from training.cardiac_mri.phantom import make_params, render_all

        p = make_params(seed)
        images, labels = render_all(p)
        return images, labels, (p.geometry, p.heart_rate_bpm, bsa_mosteller_m2(p.height_cm, p.weight_kg))
    from training.cardiac_mri.phantom_b import make_cine_b

    c = make_cine_b(seed)
    return c.images, c.labels, (c.geometry, c.heart_rate_bpm, c.bsa_m2)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return float(2 * (a & b).sum() / total) if total else float("nan")


def _case(job: tuple[str, int, Sequence[Model]]) -> list[dict[str, Any]]:
    """One phantom through every model: truth and measured volumes, EF, phases and Dice per label."""
    from models.runtime import RuntimeSettings, make_runtime
    from training.cardiac_mri.export import SIGNATURE

    family, seed, models = job
    images, truth_labels, (geometry, hr, bsa) = _phantom(family, seed)
    truth = cardiac_function(masks_from_labels(truth_labels), geometry, hr, bsa)
    out = []
    for m in models:
        with make_runtime(RuntimeSettings(model_repository=m.repo, device="cpu", intra_op_threads=1)) as runtime:
            version = runtime.resolve_version(SIGNATURE.model, m.version)

            def predict(x: np.ndarray) -> np.ndarray:
                return runtime.infer(SIGNATURE.model, {SIGNATURE.input_name: x}, version=version).outputs[
                    SIGNATURE.output_name]

            labels = segment_cine(images, predict)
        ours = cardiac_function(masks_from_labels(labels), geometry, hr, bsa)
        out.append({"family": family, "seed": seed, "edv_truth": truth.lv.edv_ml, "edv": ours.lv.edv_ml,
                    "esv_truth": truth.lv.esv_ml, "esv": ours.lv.esv_ml, "ef_truth": truth.lv.ef_pct,
                    "ef": ours.lv.ef_pct, "phases_agree": (truth.lv.ed_phase, truth.lv.es_phase) == (
                        ours.lv.ed_phase, ours.lv.es_phase), "mass_truth": truth.lv_mass_g, "mass": ours.lv_mass_g,
                    **_rv(truth, ours),
                    **{f"dice_{k}": _dice(labels == v, truth_labels == v) for k, v in LABELS.items()}})
    return out


def _rv(truth: Any, ours: Any) -> dict[str, float]:
    """RV EDV and ESV of truth and ours (0 where no RV was found)."""
    return {f"rv_{k}{suffix}": getattr(f.rv, f"{k}_ml") if f.rv else 0.0
            for f, suffix in ((truth, "_truth"), (ours, "")) for k in ("edv", "esv")}


def _mean_abs_pct(cases: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """Mean absolute error (%) of *key* against ``key_truth`` over the cases that have it (None: none has)."""
    errors = [abs(float(c[key]) / float(c[f"{key}_truth"]) - 1) * 100 for c in cases
              if key in c and float(c.get(f"{key}_truth", 0.0)) > 0]
    return float(np.mean(errors)) if errors else None


def summarise(cases: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The issue-28 measures of one (model, family): EF within 3 points, max and mean errors, Dice per label."""
    a = {k: np.array([float(c[k]) for c in cases]) for k in ("edv_truth", "edv", "esv_truth", "esv", "ef_truth",
                                                               "ef", *(f"dice_{n}" for n in LABELS))}
    ef = np.abs(a["ef"] - a["ef_truth"])
    edv, esv = np.abs(a["edv"] / a["edv_truth"] - 1) * 100, np.abs(a["esv"] / a["esv_truth"] - 1) * 100
    out = {"ef_within_3_points": float(np.mean(ef <= 3.0)), "edv_max_abs_error_pct": float(edv.max()),
           "esv_max_abs_error_pct": float(esv.max()), "ef_max_abs_error_points": float(ef.max()),
           "ef_mean_abs_error_points": float(ef.mean()), "edv_mean_abs_error_pct": float(edv.mean()),
           "esv_mean_abs_error_pct": float(esv.mean()),
           "edv_esv_within_10pct": float(np.mean((edv <= 10) & (esv <= 10))),
           "ed_es_phase_agreement": float(np.mean([bool(c["phases_agree"]) for c in cases]))}
    for key in ("mass", "rv_edv", "rv_esv"):  # also reported by the pipeline, not under the bars
        value = _mean_abs_pct(cases, key)
        if value is not None:
            out[f"{key}_mean_abs_error_pct"] = value
    for n in LABELS:  # NaN where neither truth nor prediction has the label
        d = a[f"dice_{n}"][np.isfinite(a[f"dice_{n}"])]
        out[f"dice_{n}"] = float(d.mean()) if d.size else float("nan")
    return {k: round(v, 4) for k, v in out.items()}


def report(models: Sequence[Model], seeds: Sequence[int], workers: int = 2) -> list[dict[str, Any]]:
    """One row per (model, evaluation family): ``{trained_on, family, version, seeds, measured, bars, cases}``."""
    from training.families import bars

    jobs = [(f, s, tuple(models)) for f in FAMILIES for s in seeds]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = pool.map(_case, jobs, chunksize=1)
    else:
        done = [_case(j) for j in jobs]
    rows = []
    for i, m in enumerate(models):
        for family in FAMILIES:
            cases = [d[i] for d in done if d[i]["family"] == family]
            measured = summarise(cases)
            rows.append({"trained_on": m.trained_on, "family": family, "version": m.version,
                         "seeds": [seeds[0], seeds[-1] + 1], "measured": measured,
                         "bars": bars("cardiac_mri", measured),
                         "cases": [{k: round(v, 3) if isinstance(v, float) else v for k, v in c.items()}
                                   for c in cases]})
    return rows


def card_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as :func:`training.publish.cross_family_lines` renders them in the model card."""
    return [{"train_family": r["trained_on"] + (f" (version {r['version']})" if r["version"] else ""),
             "evaluation_family": r["family"], "phantoms": len(r["cases"]), "bars": r["bars"]} for r in rows]


#: Noise of a family's EF MAE (points): the shared shipping rule's (:data:`training.families.SHIP_MEASURES`).
EF_MAE_NOISE_POINTS = next(m.noise for m in SHIP_MEASURES["cardiac_mri"] if m.name == "ef_mean_abs_error_points")


def better_than(baseline: Sequence[Mapping[str, Any]], ours: Sequence[Mapping[str, Any]]) -> tuple[bool, list[str]]:
    """Whether *ours* (rows of one model per family) may replace *baseline*: the shared rule
    (:func:`training.families.ship_verdict`) with the cardiac measures: better beyond noise on family B (the EF MAE
    lower by more than :data:`EF_MAE_NOISE_POINTS`, or more cines within the EF or the EDV/ESV bar by more than
    one cine) and worse beyond noise on neither family. Returns (verdict, reasons: empty when it may)."""
    def values(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        return {str(r["family"]): dict(r["measured"]) for r in rows}

    cases = {str(r["family"]): len(r["cases"]) for r in ours}
    verdict = ship_verdict(values(baseline), values(ours), SHIP_MEASURES["cardiac_mri"], cases, better_on=("B",))
    if verdict.ship:
        return True, []
    reasons = [] if verdict.better.get("B") else ["family B: not better beyond noise (EF MAE, cines within the bars)"]
    return False, reasons + [line for line in verdict.reasons() if "worse" in line or "not evaluated" in line]


def table_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["model          train -> eval  EF<=3pt  EDV max %  ESV max %  EF MAE  EDV/ESV<=10%  phases  "
             "Dice LV / myo / RV   bars"]
    for r in rows:
        m = r["measured"]
        met = all(b["met"] for b in r["bars"].values())
        lines.append(f"{'v' + str(r['version']) if r['version'] else 'candidate':<14} {r['trained_on']:>3} -> "
                     f"{r['family']:<5}  {m['ef_within_3_points']:6.2f}  {m['edv_max_abs_error_pct']:9.1f}  "
                     f"{m['esv_max_abs_error_pct']:9.1f}  {m['ef_mean_abs_error_points']:6.2f}  "
                     f"{m['edv_esv_within_10pct']:12.2f}  {m['ed_es_phase_agreement']:6.2f}  "
                     f"{m['dice_lv']:.3f} / {m['dice_myo']:.3f} / {m['dice_rv']:.3f}  {'MET' if met else 'FAIL'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the run meets every bar on both families (with ``--require-better``: when it is better than the
    baseline on family B and not worse on A, :func:`better_than`), 1 otherwise."""
    from training.candidate import CANDIDATE_DIR, EVALUATION_JSON

    parser = argparse.ArgumentParser(prog="python -m training.cardiac_mri.cross_family")
    parser.add_argument("run", type=Path)
    parser.add_argument("--seeds", default=f"{EVAL_SEED_START}:{EVAL_SEED_START + 20}")
    parser.add_argument("--baseline", help="REPO:VERSION of a published segmenter to evaluate beside the run")
    parser.add_argument("--baseline-trained-on", default="A")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--require-better", action="store_true",
                        help="exit 0 when better than --baseline on family B and not worse on A (not the bars)")
    args = parser.parse_args(argv)
    lo, hi = (int(v) for v in args.seeds.split(":"))
    cfg = json.loads((args.run / "config.json").read_text(encoding="utf-8"))
    models = [Model(args.run / CANDIDATE_DIR, None, "+".join(cfg.get("families", ["A"])))]
    if args.baseline:
        repo, version = args.baseline.rsplit(":", 1)
        models.insert(0, Model(Path(repo), int(version), args.baseline_trained_on))
    rows = report(models, list(range(lo, hi)), args.workers)
    ours = [r for r in rows if r["version"] is None]
    result: dict[str, Any] = {"task": "cardiac_mri", "runtime": "onnxruntime", "seeds": [lo, hi], "rows": rows,
                              "cross_family": card_rows(rows), "cross_family_table": table_lines(rows),
                              "passes_bars": all(b["met"] for r in ours for b in r["bars"].values())}
    if args.baseline:
        verdict, reasons = better_than([r for r in rows if r["version"] is not None], ours)
        result["better_than_baseline"] = {"verdict": verdict, "reasons": reasons}
    (args.run / EVALUATION_JSON).write_text(json.dumps(result, indent=2), encoding="utf-8")
    for line in table_lines(rows):
        sys.stdout.write(line + "\n")
    if "better_than_baseline" in result:
        verdict = result["better_than_baseline"]
        sys.stdout.write(f"better than the baseline on B and not worse on A: {'yes' if verdict['verdict'] else 'no'}"
                         + "".join(f"\n  {r}" for r in verdict["reasons"]) + "\n")
    sys.stdout.write(f"written {args.run / EVALUATION_JSON}\n")
    if args.require_better:
        return 0 if result.get("better_than_baseline", {}).get("verdict") else 1
    return 0 if result["passes_bars"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
