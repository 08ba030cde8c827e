"""What ``aiws train cardiac_mri`` and ``aiws evaluate RUN`` do for this task (phantoms from seeds: no --data)."""
from __future__ import annotations

from pathlib import Path

from models.cardiac_mri.network import MODEL_NAME
from training.candidate import CANDIDATE_DIR, bar_lines, evaluate_candidate, has_candidate
from training.cardiac_mri.evaluate import EVAL_SEED_START, evaluate
from training.cardiac_mri.export import SIGNATURE
from training.cardiac_mri.train import TrainConfig, train

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"
DEFAULT_EVAL_SEEDS = (EVAL_SEED_START, EVAL_SEED_START + 20)


def is_run(run_dir: Path) -> bool:
    return has_candidate(run_dir, MODEL_NAME)


def train_run(config_file: Path | None, run_dir: Path) -> list[str]:
    """Train (config file or the shipped default); lines to print."""
    cfg = TrainConfig.from_file(config_file or DEFAULT_CONFIG)
    result = train(cfg, run_dir)
    v = result.metrics
    return [f"run {run_dir}: {result.seconds:.0f} s; validation: EDV max error {v.get('edv_max_abs_error_pct')} %, "
            f"ESV {v.get('esv_max_abs_error_pct')} %, EF {v.get('ef_max_abs_error_points')} points, "
            f"mass {v.get('mass_max_abs_error_pct')} %",
            f"exported candidate: {run_dir / CANDIDATE_DIR}; next: aiws evaluate {run_dir}; aiws export {run_dir}"]


def evaluate_run(run_dir: Path, seeds: tuple[int, int] = DEFAULT_EVAL_SEEDS) -> tuple[list[str], bool]:
    """Evaluate the candidate on unseen phantom seeds; (lines to print, all bars met)."""
    metrics = evaluate_candidate(run_dir, "cardiac_mri", SIGNATURE, range(*seeds), evaluate)
    d = metrics.as_dict()
    bars = [("EDV within 5 %", f"max {d['edv_max_abs_error_pct']} %", float(d["edv_max_abs_error_pct"]) <= 5),
            ("ESV within 5 %", f"max {d['esv_max_abs_error_pct']} %", float(d["esv_max_abs_error_pct"]) <= 5),
            ("EF within 3 points", f"max {d['ef_max_abs_error_points']} points",
             float(d["ef_max_abs_error_points"]) <= 3),
            ("LV mass within 10 %", f"max {d['mass_max_abs_error_pct']} %", float(d["mass_max_abs_error_pct"]) <= 10)]
    lines = [f"cardiac_mri evaluation on unseen phantom seeds {seeds[0]}..{seeds[1] - 1} (ONNX Runtime)",
             metrics.table(), ""]
    lines += bar_lines(bars)
    lines.append(f"  also: mean errors EDV {d['edv_mean_error_pct']} %, ESV {d['esv_mean_error_pct']} %, mass "
                 f"{d['mass_mean_error_pct']} %; RV EDV max {d['rv_edv_max_abs_error_pct']} %, RV ESV max "
                 f"{d['rv_esv_max_abs_error_pct']} %; ED/ES phase agreement {d['ed_es_phase_agreement']}")
    lines.append(f"written {run_dir / 'evaluation.json'}")
    return lines, all(ok for _, _, ok in bars)
