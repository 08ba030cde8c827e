"""What ``aiws train coronary_ct`` and ``aiws evaluate RUN`` do for this task (phantoms from seeds: no --data)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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


def card_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """The "train family -> evaluation family" rows of the model card (:func:`training.publish.cross_family_lines`)
    from ``python -m training.coronary_ct.evaluate``'s report: each bar with its value and whether it is met."""
    rows = []
    for family, report in evaluation.get("families", {}).items():
        bars = report["cross_family_bars"]
        cells = {"vessel Agatston within 10 % (or 2 points)": (bars["vessel_agatston_within_10pct"]["fraction"],
                                                                ">= 0.90", bars["vessel_agatston_within_10pct"]["meets_90"])}
        for vessel, r in bars["lesion_recall_per_vessel"].items():
            cells[f"{vessel} lesion recall"] = (r["fraction"], ">= 0.95", r["meets_95"])
        cells["CAC-DRS agreement"] = (bars["cac_drs_agreement"]["fraction"], ">= 0.90", bars["cac_drs_agreement"]["meets_90"])
        cells["phantoms with confounder calcium counted"] = (
            bars["confounder_counted_phantoms"]["fraction"], "< 0.02", bars["confounder_counted_phantoms"]["meets_below_2pct"])
        rows.append({"train_family": report.get("trained_on", ""), "evaluation_family": family,
                     "phantoms": report.get("phantoms", ""),
                     "bars": {name: {"value": value, "bar": bar, "met": bool(met)} for name, (value, bar, met) in cells.items()}})
    return rows


def export_run(run_dir: Path, repo_root: Path) -> tuple[str, int]:
    """Publish the run's candidate as the next version (:func:`training.lung_nodules.export.export_run`), its card
    with the current limitations and, when the run was evaluated per family, the train -> evaluation family table.

    Raises:
        FileNotFoundError: the run has no exported candidate.
    """
    import json

    from training.candidate import EVALUATION_JSON
    from training.coronary_ct.export import LIMITATIONS
    from training.lung_nodules.export import export_run as publish_run
    from training.publish import CARD_JSON

    folder = run_dir / CANDIDATE_DIR / MODEL_NAME
    cards = sorted(folder.glob(f"*/{CARD_JSON}"))
    if not cards:
        raise FileNotFoundError(f"{run_dir}: no exported {MODEL_NAME} in {run_dir / CANDIDATE_DIR} (train first)")
    card = json.loads(cards[-1].read_text(encoding="utf-8"))
    card["limitations"] = LIMITATIONS
    evaluation = run_dir / EVALUATION_JSON
    if evaluation.is_file():
        rows = card_rows(json.loads(evaluation.read_text(encoding="utf-8")))
        if rows:
            card["cross_family"] = rows
    cards[-1].write_text(json.dumps(card, indent=2), encoding="utf-8")
    return publish_run(run_dir, repo_root)
