"""The shipped mammography model: its config.pbtxt fits its ONNX file, its card carries the calibration and
the evaluation figures, and those figures meet the issue's quality bars."""
from __future__ import annotations

import json
from pathlib import Path

from models.mammography.detection import Calibration
from models.runtime.model_config import read_model_config
from models.runtime.repository import ModelRepository
from models.runtime.validate import check_against_onnx

REPO = Path(__file__).resolve().parents[3] / "triton_repo"
MODEL = "mammo_detector"


def test_shipped_model_is_consistent_small_and_meets_the_bars() -> None:
    repo = ModelRepository(REPO)
    version = repo.resolve_version(MODEL)
    onnx = repo.model_path(MODEL, version)
    check_against_onnx(read_model_config(repo.config_path(MODEL)), onnx)
    assert onnx.stat().st_size < 10 * 1024 * 1024
    card = json.loads((onnx.parent / "model_card.json").read_text())
    calibration = Calibration.from_json(card["operating_point"], "model card")
    assert calibration.fitted_on["exams"] >= 50
    figures = card["metrics"]["evaluation_unseen_seeds"]
    assert figures["exams"] >= 50
    trained = card["trained_on"]
    if "phantom_exams" in trained:  # version 1: family A alone
        spans = {"a": ([trained["phantom_exams"]], figures["seeds"])}
    else:  # trained on phantom families: each family's seeds unseen by its training, validation and calibration
        spans = {f: ([seen[k] for k in ("train_seeds", "validation_seeds", "calibration_seeds")],
                     figures["families"][f]["seeds"]) for f, seen in trained["phantom_families"].items()}
    for seen, evaluation in spans.values():
        assert all(evaluation[0] >= s[1] or evaluation[1] <= s[0] for s in seen)  # unseen seeds
    assert figures["density_agreement_exam"] >= 0.85
    assert figures["mass"]["sensitivity"] >= 0.90 and figures["mass"]["fp_per_image"] <= 0.5
    assert figures["calcification"]["sensitivity"] >= 0.85
    assert min(figures["exam_score_counts"]) >= 1  # every exam-score decile is populated
