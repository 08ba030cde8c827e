"""What ``aiws train coronary_ct`` and ``aiws evaluate RUN`` do for this task (phantoms from seeds: no --data)."""
from __future__ import annotations

from pathlib import Path

from models.coronary_ct.network import MODEL_NAME
from training.candidate import CANDIDATE_DIR, bar_lines, evaluate_candidate, has_candidate
from training.coronary_ct.evaluate import EVAL_SEED_START, evaluate
from training.coronary_ct.export import SIGNATURE
from training.coronary_ct.train import TrainConfig, train

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"
DEFAULT_EVAL_SEEDS = (EVAL_SEED_START, EVAL_SEED_START + 50)


def is_run(run_dir: Path) -> bool:
    return has_candidate(run_dir, MODEL_NAME)


def train_run(config_file: Path | None, run_dir: Path) -> list[str]:
    """Train (config file or the shipped default); lines to print."""
    cfg = TrainConfig.from_file(config_file or DEFAULT_CONFIG)
    result = train(cfg, run_dir)
    v = result.metrics
    return [f"run {run_dir}: {result.seconds:.0f} s; validation: Agatston within bar "
            f"{v.get('agatston_within_bar_fraction')}, vessel accuracy {v.get('vessel_accuracy')}, "
            f"bone counted {v.get('bone_lesions_counted')}",
            f"exported candidate: {run_dir / CANDIDATE_DIR}; next: aiws evaluate {run_dir}; aiws export {run_dir}"]


def evaluate_run(run_dir: Path, seeds: tuple[int, int] = DEFAULT_EVAL_SEEDS) -> tuple[list[str], bool]:
    """Evaluate the candidate on unseen phantom seeds; (lines to print, all bars met)."""
    metrics = evaluate_candidate(run_dir, "coronary_ct", SIGNATURE, range(*seeds), evaluate)
    d = metrics.as_dict()
    bars = [("total Agatston within 5 % (3 points below 60) on every phantom",
             f"{100 * metrics.agatston_within_bar_fraction:.1f} % of phantoms", metrics.agatston_within_bar_fraction == 1),
            ("vessel assignment accuracy >= 90 %", f"{100 * metrics.vessel_accuracy:.1f} % of "
             f"{d['coronary_lesions']} lesions", metrics.vessel_accuracy >= 0.9),
            ("no bone counted", f"{metrics.bone_counted} bone lesions counted", metrics.bone_counted == 0)]
    lines = [f"coronary_ct evaluation on unseen phantom seeds {seeds[0]}..{seeds[1] - 1} (ONNX Runtime)",
             metrics.table(), ""]
    lines += bar_lines(bars)
    lines.append(f"  also: extra-coronary lesions counted {d['extra_coronary_lesions_counted']}, "
                 f"CAC-DRS agreement {100 * float(d['cac_drs_agreement']):.1f} %, "
                 f"mean |Agatston error| {d['agatston_mean_abs_error']}")
    lines.append(f"written {run_dir / 'evaluation.json'}")
    return lines, all(ok for _, _, ok in bars)
