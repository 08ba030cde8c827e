"""What ``aiws train mammography``, ``aiws evaluate RUN`` and ``aiws export RUN`` do for this task
(phantoms from seeds: no --data). The stages themselves are in :mod:`training.mammography.run`."""
from __future__ import annotations

from pathlib import Path

from training.candidate import has_candidate
from training.mammography.config import TrainConfig, load_config
from training.mammography.run import CANDIDATE_DIR, evaluate_stage, export_stage, train_stage

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"


def is_run(run_dir: Path) -> bool:
    return (run_dir / "config.json").is_file() and has_candidate(run_dir, TrainConfig().name)


def train_run(config_file: Path | None, run_dir: Path) -> list[str]:
    """Train (config file or the shipped default); lines to print."""
    candidate = train_stage(load_config(config_file or DEFAULT_CONFIG), run_dir, progress=False)
    return [f"exported candidate: {candidate}; next: aiws evaluate {run_dir}; aiws export {run_dir}"]


def evaluate_run(run_dir: Path, seeds: tuple[int, int] | None = None) -> tuple[list[str], bool]:
    """Calibrate (once) and evaluate on unseen phantom seeds; (lines to print, all bars met)."""
    metrics = evaluate_stage(run_dir, seeds)
    return (["mammography evaluation on unseen phantom seeds (ONNX Runtime)", *metrics.lines(),
             f"written {run_dir / 'metrics.json'}"], all(metrics.passed.values()))


def export_run(run_dir: Path, repo_root: Path) -> tuple[str, int]:
    """Publish the evaluated candidate; (model, version).

    Raises:
        FileNotFoundError: the run was not trained or not evaluated.
    """
    if not (run_dir / CANDIDATE_DIR).is_dir():
        raise FileNotFoundError(f"{run_dir}: no exported candidate (train first)")
    return load_config(run_dir / "config.json").name, export_stage(run_dir, repo_root)
