"""The mammography model's loop, stage by stage, each writing into the run directory:

  train     phantoms -> MONAI U-Net checkpoint -> candidate ONNX in RUN/export/<model>/1/
  evaluate  calibration on calibration seeds (RUN/calibration.json, once), then the quality bars on
            unseen seeds, through ONNX Runtime exactly as the service runs the model (RUN/metrics.json)
  export    publish the candidate as the next version of triton_repo/<model>/ with its model card
            (calibration under ``operating_point``, figures under ``metrics``)
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from models.mammography.detection import Calibration
from models.mammography.inference import runtime_predictor
from models.runtime import RuntimeSettings, make_runtime
from training.mammography.config import TrainConfig, load_config
from training.mammography.evaluate import Metrics, calibrate, collect, evaluate
from training.mammography.export import model_card, publish
from training.mammography.phantom import PhantomConfig
from training.mammography.train import load_model, train

LOGGER = logging.getLogger(__name__)

CANDIDATE_DIR = "export"
CALIBRATION = "calibration.json"
METRICS = "metrics.json"


def train_stage(config: TrainConfig, run_dir: Path, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Train and write the candidate ONNX (version 1 of a one-model repository in RUN/export)."""
    t0 = time.perf_counter()
    train(config, run_dir, progress=progress, cache_dir=cache_dir)
    candidate = run_dir / CANDIDATE_DIR
    if candidate.exists():
        shutil.rmtree(candidate)
    candidate.mkdir(parents=True)
    card = {"summary": "candidate (not calibrated yet)", "provenance": {"training_config_sha256": config.hash}}
    publish(load_model(run_dir), candidate, config, card, run_dir, version=1)
    (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
    return candidate


def _predictor(run_dir: Path, model: str):
    runtime = make_runtime(RuntimeSettings(model_repository=run_dir / CANDIDATE_DIR, device="cpu", intra_op_threads=1))
    return runtime, runtime_predictor(runtime, model, runtime.resolve_version(model))


def evaluate_stage(run_dir: Path, evaluation_seeds: tuple[int, int] | None = None,
                   calibration_seeds: tuple[int, int] | None = None) -> Metrics:
    """Calibrate (once) and evaluate the candidate through ONNX Runtime; writes calibration.json and metrics.json."""
    config = load_config(run_dir / "config.json")
    runtime, predict = _predictor(run_dir, config.name)

    def screening(seed: int) -> PhantomConfig:
        return config.phantom_for(seed, config.screening_lesion_rate)

    with runtime:
        path = run_dir / CALIBRATION
        if path.is_file() and calibration_seeds is None:
            calibration = Calibration.load(path)
        else:
            span = calibration_seeds or config.calibration_seeds
            calibration = calibrate(collect(range(*span), screening, predict), config.target_fp_per_image)
            calibration.save(path)
        span = evaluation_seeds or config.evaluation_seeds
        t0 = time.perf_counter()
        records = collect(range(*span), screening, predict, calibration)
        metrics = evaluate(records, calibration)
    figures = {**asdict(metrics), "seeds": list(span), "seconds_per_exam": (time.perf_counter() - t0) / len(records)}
    (run_dir / METRICS).write_text(json.dumps(figures, indent=2))
    return metrics


def export_stage(run_dir: Path, repo_root: Path) -> int:
    """Publish the evaluated candidate into *repo_root*; returns the new version.

    Raises:
        FileNotFoundError: the run was not trained or not evaluated.
    """
    config = load_config(run_dir / "config.json")
    for needed in (CALIBRATION, METRICS, "history.json"):
        if not (run_dir / needed).is_file():
            raise FileNotFoundError(f"{run_dir}: no {needed}; run the train and evaluate stages first")
    calibration = Calibration.load(run_dir / CALIBRATION)
    metrics: dict[str, Any] = json.loads((run_dir / METRICS).read_text())
    history = json.loads((run_dir / "history.json").read_text())
    seconds = (run_dir / "train_seconds.txt").read_text().strip() if (run_dir / "train_seconds.txt").is_file() else "?"
    training = {"steps": config.steps, "final_validation_dice": history["val_dice"][-1], "train_seconds": seconds,
                "run": run_dir.name}
    card = model_card(config, calibration, {"evaluation_unseen_seeds": metrics}, training)
    return publish(load_model(run_dir), repo_root, config, card, run_dir)
