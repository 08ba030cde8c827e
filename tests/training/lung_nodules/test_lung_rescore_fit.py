"""Fitting the second stage: logistic regression, cross-validated threshold, refused inputs."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.rescore import FEATURES
from training.lung_nodules.metrics import ScanResult, froc
from training.lung_nodules.rescore import RescoreError, TuningScan, _positives, cross_validated, fit

ELONGATION = FEATURES.index("elongation")


def _record(x: float, score: float) -> dict:
    return {"score": score, "centre_mm": [x, 0.0, 0.0], "mean_diameter_mm": 8.0}


def _scans(n: int = 8, seed: int = 0) -> list[TuningScan]:
    """Each scan: 2 nodules (at x=0 and x=50) found with a low network score and 6 elongated false positives
    with a higher one; only the elongation feature separates them (with some overlap)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n):
        truth = [{"centre_mm": [0.0, 0.0, 0.0], "mean_diameter_mm": 8.0},
                 {"centre_mm": [50.0, 0.0, 0.0], "mean_diameter_mm": 8.0}]
        found = [_record(0.0, 0.90), _record(50.5, 0.91)] + [_record(100.0 + 10 * k, 0.99) for k in range(6)]
        feats = rng.normal(0.0, 1.0, (8, len(FEATURES)))
        feats[:2, ELONGATION] = rng.normal(0.1, 0.1, 2)
        feats[2:, ELONGATION] = rng.normal(1.0, 0.3, 6)
        scan = ScanResult(f"s{s}", truth, found)
        out.append(TuningScan(scan, feats, _positives(scan)))
    return out


def test_positives_are_candidates_on_a_nodule_including_second_hits() -> None:
    truth = [{"centre_mm": [0.0, 0.0, 0.0], "mean_diameter_mm": 10.0}]
    found = [_record(0.0, 0.9), _record(4.0, 0.8), _record(6.0, 0.99)]  # tolerance max(5, 3) mm
    assert _positives(ScanResult("a", truth, found)).tolist() == [True, True, False]
    assert _positives(ScanResult("b", [], found)).tolist() == [False, False, False]


def test_fit_learns_the_separating_feature_and_cross_validation_beats_the_network_score() -> None:
    scans = _scans()
    model = fit(np.vstack([s.features for s in scans]), np.concatenate([s.positive for s in scans]))
    assert model.features == FEATURES
    weights = dict(zip(model.features, model.weights, strict=True))
    assert weights["elongation"] < -1.0 and max(abs(w) for f, w in weights.items() if f != "elongation") < 1.0
    network = froc([s.scan for s in scans])["points"]
    validated = froc(cross_validated(scans))["points"]
    assert network["1.0"]["sensitivity"] == 0.0  # six false positives above both nodules in every scan
    assert validated["1.0"]["sensitivity"] >= 0.9


def test_fit_needs_both_classes() -> None:
    x = np.zeros((4, len(FEATURES)))
    with pytest.raises(RescoreError, match="0 of 4 on nodules"):
        fit(x, np.zeros(4, dtype=bool))
    with pytest.raises(RescoreError, match="4 of 4"):
        fit(x, np.ones(4, dtype=bool))


def test_the_card_summary_names_the_current_blob_count() -> None:
    from training.lung_nodules.rescore import with_blob_sentence

    ten = with_blob_sentence("A network.", 10)
    assert ten.startswith("A network.") and "its 10 strongest blobs" in ten
    five = with_blob_sentence(ten, 5)
    assert "its 5 strongest blobs" in five and "10 strongest" not in five and five.count("dot-enhancement") == 1
    assert with_blob_sentence(five, 0) == "A network."


def test_the_card_summary_names_the_current_growth_radius() -> None:
    from training.lung_nodules.rescore import with_blob_sentence, with_grow_sentence

    both = with_grow_sentence(with_blob_sentence("A network.", 10), 2.5)
    assert "its 10 strongest blobs" in both and "a ball of 2.5 mm radius" in both
    again = with_grow_sentence(with_blob_sentence(both, 10), 3.0)
    assert "3.0 mm radius" in again and "2.5 mm" not in again and again.count("CT body") == 1
    assert with_grow_sentence(again, 0.0) == with_blob_sentence("A network.", 10)
