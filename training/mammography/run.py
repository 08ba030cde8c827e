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

from models.mammography.analysis import Predict
from models.mammography.detection import Calibration
from models.mammography.inference import CARD_JSON, runtime_predictor
from models.runtime import RuntimeSettings, make_runtime
from training.mammography.config import TrainConfig, load_config
from training.mammography.evaluate import ExamRecord, Metrics, calibrate, collect, evaluate
from training.mammography.export import model_card, publish
from training.mammography.phantom import PhantomConfig
from training.mammography.train import load_model, train

LOGGER = logging.getLogger(__name__)

CANDIDATE_DIR = "export"
CALIBRATION = "calibration.json"
METRICS = "metrics.json"
CROSS_FAMILY = "cross_family.json"


def train_stage(config: TrainConfig, run_dir: Path, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Train and write the candidate ONNX (version 1 of a one-model repository in RUN/export)."""
    t0 = time.perf_counter()
    train(config, run_dir, progress=progress, cache_dir=cache_dir)
    candidate = run_dir / CANDIDATE_DIR
    if candidate.exists():
        shutil.rmtree(candidate)
    candidate.mkdir(parents=True)
    card = {"summary": "candidate (not calibrated yet)", "network_input": config.network_input,
            "provenance": {"training_config_sha256": config.hash}}
    publish(load_model(run_dir), candidate, config, card, run_dir, version=1)
    (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
    return candidate


def _predictor(run_dir: Path, model: str):
    runtime = make_runtime(RuntimeSettings(model_repository=run_dir / CANDIDATE_DIR, device="cpu", intra_op_threads=1))
    return runtime, runtime_predictor(runtime, model, runtime.resolve_version(model))


def _records(config: TrainConfig, stage: str, span: tuple[int, int] | None, predict: Predict,
             calibration: Calibration | None = None) -> dict[str, list[ExamRecord]]:
    """Records of the *stage* seeds (or *span*, the same for every family) of each of the config's families."""
    def screening(seed: int) -> PhantomConfig:
        return config.phantom_for(seed, config.screening_lesion_rate)

    return {family: collect(range(*(span or config.seeds(stage, family))), screening, predict, calibration, family,
                            config.relative) for family in config.families}


def _calibrate_candidate(run_dir: Path, model: str, calibration: Calibration) -> None:
    """The candidate's card gets its operating point, so that the service's loaders (and the cross-family
    evaluation, :mod:`training.mammography.compare`) run it as they would run a published version."""
    path = run_dir / CANDIDATE_DIR / model / "1" / CARD_JSON
    card = json.loads(path.read_text())
    card.update(summary="candidate (calibrated, not published)", operating_point=calibration.to_json())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=2))
    tmp.replace(path)


def evaluate_stage(run_dir: Path, evaluation_seeds: tuple[int, int] | None = None,
                   calibration_seeds: tuple[int, int] | None = None) -> Metrics:
    """Calibrate (once) and evaluate the candidate through ONNX Runtime; writes calibration.json and metrics.json.
    A run on both families is calibrated on both and evaluated on both (pooled figures, and each family's under
    ``families``)."""
    config = load_config(run_dir / "config.json")
    runtime, predict = _predictor(run_dir, config.name)
    with runtime:
        path = run_dir / CALIBRATION
        if path.is_file() and calibration_seeds is None:
            calibration = Calibration.load(path)
        else:
            pooled = [r for rs in _records(config, "calibration", calibration_seeds, predict).values() for r in rs]
            calibration = calibrate(pooled, config.target_fp_per_image)
            calibration.save(path)
            _calibrate_candidate(run_dir, config.name, calibration)
        t0 = time.perf_counter()
        by_family = _records(config, "evaluation", evaluation_seeds, predict, calibration)
        records = [r for rs in by_family.values() for r in rs]
        metrics = evaluate(records, calibration)
    figures: dict[str, Any] = {**asdict(metrics), "seeds": list(evaluation_seeds or config.evaluation_seeds),
                               "seconds_per_exam": (time.perf_counter() - t0) / len(records)}
    if len(by_family) > 1:
        figures["families"] = {family: {**asdict(evaluate(rs, calibration)), "seeds": [rs[0].seed, rs[-1].seed + 1]}
                               for family, rs in by_family.items()}
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
    if (run_dir / CROSS_FAMILY).is_file():  # training.mammography.compare: rows of training.families.card_rows
        card["cross_family"] = json.loads((run_dir / CROSS_FAMILY).read_text())
    return publish(load_model(run_dir), repo_root, config, card, run_dir)
