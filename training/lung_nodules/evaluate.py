"""Evaluate a training run on phantoms it never saw, through the shipped inference path.

The run's exported candidate (``RUN/export``) is run with ONNX Runtime and
:func:`models.lung_nodules.inference.detect_nodules`, i.e. exactly what the service runs. The
evaluation data must not share phantom seeds with the training data. Results go to
``RUN/evaluation.json`` (and into the model card at ``aiws export``).

Quality bars (issue 4): sensitivity >= 90 % for nodules >= 5 mm at <= 1 FP/scan, mean absolute
diameter error <= 1.0 mm, type accuracy >= 90 %, Lung-RADS agreement >= 90 %.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.lung_nodules.inference import candidate_settings, detect_nodules
from models.runtime.ort import OnnxRuntime
from models.runtime.repository import ModelRepository
from training.lung_nodules.dataset import dataset_families, dataset_seeds
from training.lung_nodules.export import CANDIDATE_DIR, run_model
from training.lung_nodules.metrics import ScanResult, detection_record, dice, froc, summarize
from training.msd import case_names, read_case

LOGGER = logging.getLogger(__name__)

BARS = {"sensitivity_5mm_at_1fp": 0.90, "diameter_mae_mm": 1.0, "type_accuracy": 0.90,
        "lung_rads_exam_agreement": 0.90, "lung_rads_nodule_agreement": 0.90}


class EvaluationError(ValueError):
    """The evaluation cannot be run as asked (overlapping seeds, no exported model)."""


def _check_seeds(run_dir: Path, data_dir: Path) -> list[int]:
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    seeds = dataset_seeds(data_dir)
    for key, use in (("training_seeds", "train"), ("rescore_seeds", "fit the second stage of")):
        shared = sorted(set(seeds) & set(run.get(key, [])))
        if shared:
            raise EvaluationError(f"{data_dir}: phantom seeds {shared[:10]} were used to {use} {run_dir.name}; "
                                  f"evaluate on unseen seeds")
    return seeds


def _scan(runtime: OnnxRuntime, model: str, version: int, name: str, data_dir: Path, threshold: float
          ) -> tuple[ScanResult, float]:
    case = read_case(data_dir, name)
    settings = candidate_settings(runtime, model, version)
    everything = dataclasses.replace(settings, min_score=0.0)  # every candidate, for the FROC curve
    t0 = time.perf_counter()
    det = detect_nodules(runtime, case.image, case.grid, model, version, everything)
    seconds = time.perf_counter() - t0
    pred = np.zeros(case.image.shape, dtype=bool)
    for n in det.nodules:
        if n.score >= threshold:
            pred[n.box] |= n.mask
    truth = case.label > 0 if case.label is not None else np.zeros_like(pred)
    found = [detection_record(n) for n in det.nodules]
    return ScanResult(name, case.meta.get("nodules", []), found, dice(pred, truth),
                      {"slice_mm": round(case.grid.spacing[0], 2), "shape": list(case.image.shape),
                       "seconds": round(seconds, 1)}), seconds


def evaluate_run(run_dir: Path, data_dir: Path, threads: int = 0) -> dict[str, Any]:
    """Metrics of the run's exported network on *data_dir* (MSD layout with ``nodulesTr`` truth).

    Raises:
        EvaluationError: no exported candidate, or the data shares seeds with the training data.
    """
    repo = ModelRepository(run_dir / CANDIDATE_DIR)
    if not repo.models():
        raise EvaluationError(f"{run_dir}: no exported model in {repo.root} (train first)")
    seeds = _check_seeds(run_dir, data_dir)
    model = run_model(run_dir)
    runtime = OnnxRuntime(repo, device="cpu", intra_op_threads=threads)
    version = runtime.resolve_version(model)
    threshold = candidate_settings(runtime, model, version).min_score
    scans, seconds = [], []
    for name in case_names(data_dir):
        scan, s = _scan(runtime, model, version, name, data_dir, threshold)
        scans.append(scan)
        seconds.append(s)
        LOGGER.info("evaluated %s: %d truth, %d candidates, %.1f s", name, len(scan.truth), len(scan.found), s)
    family = "+".join(dataset_families(data_dir)) or "a"  # issue 28: the phantom families evaluated on
    result = {"data": data_dir.name, "family": family, "seeds": seeds, "model": model,
              "operating_point": summarize(scans, threshold),
              "froc": froc(scans)["points"], "seconds_per_scan": round(float(np.mean(seconds)), 1),
              "scans": [{"name": s.name, "dice": round(s.dice or 0.0, 4), **s.extra, "truth": s.truth,
                         "found": [f for f in s.found if f["score"] >= threshold]} for s in scans]}
    result["bars"] = check_bars(result)
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def check_bars(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each quality bar with the measured value and whether it is met."""
    op = result["operating_point"]
    measured = {"sensitivity_5mm_at_1fp": result["froc"]["1.0"]["sensitivity"],
                "diameter_mae_mm": op["diameter_mae_mm"], "type_accuracy": op["type_accuracy"],
                "lung_rads_exam_agreement": op["lung_rads_exam_agreement"],
                "lung_rads_nodule_agreement": op["lung_rads_nodule_agreement"]}
    out = {}
    for key, bar in BARS.items():
        value = measured[key]
        ok = value is not None and (value <= bar if key == "diameter_mae_mm" else value >= bar)
        out[key] = {"value": value, "bar": bar, "met": bool(ok)}
    return out


def report_lines(result: dict[str, Any]) -> list[str]:
    """Human-readable lines for ``aiws evaluate``."""
    op = result["operating_point"]
    lines = [f"evaluation on {op['scans']} scans of phantom family {result.get('family', 'a')}, {op['nodules']} "
             f"nodules ({op['nodules_5mm']} >= 5 mm), "
             f"seeds {result['seeds'][:3]}…; {result['seconds_per_scan']} s/scan",
             f"operating point: score >= {op['threshold']}: sensitivity(>=5 mm) {op['sensitivity_5mm']:.3f}, "
             f"FP/scan {op['fp_per_scan']:.2f}, Dice {op['dice']}, diameter MAE {op['diameter_mae_mm']} mm "
             f"(bias {op['diameter_bias_mm']}), type accuracy {op['type_accuracy']}, Lung-RADS agreement "
             f"nodule {op['lung_rads_nodule_agreement']} / exam {op['lung_rads_exam_agreement']}",
             "FROC (sensitivity >= 5 mm at FP/scan): " + ", ".join(
                 f"{k}: {v['sensitivity']:.3f}" for k, v in result["froc"].items())]
    for key, bar in result["bars"].items():
        lines.append(f"  {'PASS' if bar['met'] else 'FAIL'} {key}: {bar['value']} (bar {bar['bar']})")
    return lines
