"""What ``aiws train cardiac_mri`` and ``aiws evaluate RUN`` do for this task (phantoms from seeds: no --data)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from models.cardiac_mri.network import MODEL_NAME
from training.candidate import CANDIDATE_DIR, bar_lines, evaluate_candidate, has_candidate
from training.cardiac_mri.evaluate import EVAL_SEED_START, evaluate
from training.cardiac_mri.export import SIGNATURE, candidate_card
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


def export_run(run_dir: Path, repo_root: Path) -> tuple[str, int]:
    """``aiws export RUN``: the run's candidate as the next version in *repo_root*; the card gets the run's
    ``evaluation.json`` (metrics) and, where :mod:`training.cardiac_mri.cross_family` wrote it, the "train family
    -> evaluation family" rows.

    Raises:
        FileNotFoundError: the run has no exported candidate.
        ModelConfigError: incompatible with the model's existing ``config.pbtxt``.
    """
    from models.runtime.repository import MODEL_FILENAME, ModelRepository
    from training.candidate import EVALUATION_JSON
    from training.publish import CARD_JSON, publish_version

    candidates = ModelRepository(run_dir / CANDIDATE_DIR)
    if MODEL_NAME not in candidates.models():
        raise FileNotFoundError(f"{run_dir}: no exported {MODEL_NAME} in {run_dir / CANDIDATE_DIR} (train first)")
    folder = candidates.root / MODEL_NAME / str(candidates.resolve_version(MODEL_NAME))
    card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    evaluation_file = run_dir / EVALUATION_JSON
    if evaluation_file.is_file():
        evaluation = json.loads(evaluation_file.read_text(encoding="utf-8"))
        if "cross_family" in evaluation:
            card["cross_family"] = evaluation.pop("cross_family")
            evaluation["rows"] = [{k: v for k, v in row.items() if k != "cases"} for row in evaluation["rows"]]
            evaluation["measured"] = {f"{r['train_family']} -> {r['evaluation_family']}": row["measured"]
                                      for r, row in zip(card["cross_family"], evaluation["rows"], strict=True)}
        card.setdefault("metrics", {})["evaluation"] = evaluation
    fresh = candidate_card(card["provenance"]["training_config"], "", {})
    card["limitations"], card["trained_on"] = fresh["limitations"], fresh["trained_on"]
    card["provenance"]["run"] = run_dir.name
    card["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    config = candidates.config_path(MODEL_NAME).read_text(encoding="utf-8")
    return MODEL_NAME, publish_version(repo_root, MODEL_NAME, folder / MODEL_FILENAME, config, card)
