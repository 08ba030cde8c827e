"""Density mapping, segmentation, region extraction, scores and CC/MLO linking."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.errors import ModelError
from models.mammography.density import MAPPING, birads_density, exam_density, percent_dense_area
from models.mammography.detection import (
    Calibration,
    Platt,
    Region,
    decile_cut_points,
    find_regions,
    link_views,
    region_score,
)
from models.mammography.segmentation import segment_breast
from training.mammography.phantom import PhantomConfig, make_exam


# BI-RADS Atlas 4th edition (2003) quartiles, as REFERENCE.md corrects them: < 25 %, 25-50 %, 51-75 %, > 75 %:
# exactly 50 % is b and exactly 75 % is c (a value at a cut point stays in the lower grade), 25 % is b.
@pytest.mark.parametrize("pd,category", [(0.0, "a"), (24.99, "a"), (25.0, "b"), (49.99, "b"), (50.0, "b"),
                                         (50.01, "c"), (50.4, "c"), (74.99, "c"), (75.0, "c"), (75.01, "d"),
                                         (100.0, "d")])
def test_birads_density_cut_points(pd: float, category: str) -> None:
    assert birads_density(pd) == category


def test_density_mapping_is_stated_with_the_result() -> None:
    result = exam_density({("L", "CC"): 50.0, ("L", "MLO"): 50.0})
    assert result.category == "b"
    assert result.mapping == MAPPING and "b 25-50 %" in MAPPING and "c > 50-75 %" in MAPPING and "d > 75 %" in MAPPING


@pytest.mark.parametrize("bad", [-0.1, 100.1, float("nan")])
def test_birads_density_rejects_impossible_values(bad: float) -> None:
    with pytest.raises(ModelError, match="outside"):
        birads_density(bad)


def test_exam_density_is_the_worst_side_of_view_means() -> None:
    result = exam_density({("L", "CC"): 20.0, ("L", "MLO"): 26.0, ("R", "CC"): 52.0, ("R", "MLO"): 46.0})
    by_side = {b.laterality: b for b in result.breasts}
    assert by_side["L"].percent_dense == pytest.approx(23.0) and by_side["L"].category == "a"
    assert by_side["R"].percent_dense == pytest.approx(49.0) and by_side["R"].category == "b"
    assert result.category == "b"


def test_percent_dense_area_excludes_the_pectoral_muscle() -> None:
    breast = np.ones((10, 10), dtype=bool)
    pectoral = np.zeros_like(breast)
    pectoral[:, :5] = True
    dense = np.zeros_like(breast)
    dense[:, :6] = True  # 50 pixels inside the pectoral do not count
    assert percent_dense_area(dense, breast, pectoral) == pytest.approx(20.0)
    assert percent_dense_area(dense, breast) == pytest.approx(60.0)


@pytest.mark.parametrize("seed", [101, 202])
def test_segmentation_on_phantoms(seed: int) -> None:
    exam = make_exam(seed, PhantomConfig(spacing_mm=0.5))
    for (lat, view), pv in exam.views.items():
        seg = segment_breast(pv.image, pv.spacing_mm, view)
        dice = 2 * (seg.breast & pv.breast).sum() / (seg.breast.sum() + pv.breast.sum())
        assert dice > 0.98, (lat, view, dice)
        if view == "MLO":
            pdice = 2 * (seg.pectoral & pv.pectoral).sum() / (seg.pectoral.sum() + pv.pectoral.sum())
            assert pdice > 0.85, (lat, view, pdice)
        else:
            assert not seg.pectoral.any()
        assert abs(seg.nipple_rc[1] - pv.nipple_rc[1]) <= 2


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_find_regions_one_per_blob_with_peak_logit() -> None:
    logits = np.full((60, 60), -8.0, dtype=np.float32)
    logits[10:20, 30:40] = _logit(0.9)
    logits[14, 34] = 25.0  # a very confident peak: float32 probabilities would saturate, logits do not
    logits[40:44, 5:9] = _logit(0.3)
    logits[50, 50] = _logit(0.02)  # below the candidate floor
    regions = find_regions(logits, "mass", np.ones_like(logits, dtype=bool), 0.5, nipple_rc=(30.0, 59.0))
    assert [round(r.logit, 2) for r in regions] == [25.0, round(_logit(0.3), 2)]
    top = regions[0]
    assert top.box == (10.0, 30.0, 20.0, 40.0)  # half the peak probability: the whole 0.9 plateau
    assert top.area_mm2 == pytest.approx(100 * 0.25)
    assert top.depth_mm == pytest.approx((59.5 - top.centre_rc[1]) * 0.5)
    assert top.score == 100 and regions[1].score == 30  # uncalibrated: the network's own probability


def test_find_regions_ignores_outside_the_breast() -> None:
    logits = np.full((20, 20), 3.0, dtype=np.float32)
    breast = np.zeros((20, 20), dtype=bool)
    assert find_regions(logits, "calcification_cluster", breast, 0.25, (10.0, 19.0)) == []


@pytest.mark.parametrize("p,score", [(0.0, 1), (0.004, 1), (0.5, 50), (0.996, 100), (1.0, 100)])
def test_region_score_range(p: float, score: int) -> None:
    assert region_score(p) == score


def _calibration(cuts: tuple[float, ...] = tuple(np.linspace(-4, 4, 9))) -> Calibration:
    return Calibration({"mass": 1.0, "calcification_cluster": 2.0},
                       {"mass": Platt(0.5, -1.0), "calcification_cluster": Platt()}, cuts, 10.0)


def test_exam_score_deciles_are_each_populated() -> None:
    raw = np.random.default_rng(0).normal(0.0, 3.0, 500)
    calibration = _calibration(decile_cut_points(raw))
    counts = np.bincount([calibration.exam_score(x) for x in raw], minlength=11)[1:]
    assert counts.min() >= 45 and counts.max() <= 55
    assert calibration.exam_score(-100.0) == 1 and calibration.exam_score(100.0) == 10


def test_exam_raw_uses_the_calibrated_logit_of_each_kind() -> None:
    calibration = _calibration()
    assert calibration.exam_raw({"mass": 6.0, "calcification_cluster": 1.5}) == pytest.approx(2.0)
    assert calibration.exam_raw({"mass": 10.0, "calcification_cluster": 1.5}) == pytest.approx(4.0)


def test_calibration_marks_scores_and_round_trips(tmp_path) -> None:
    calibration = _calibration()
    region = Region("mass", (0, 0, 1, 1), (0.5, 0.5), 2.0, 1.0, 10.0)
    assert calibration.marked(region) and not calibration.marked(Region("mass", (0, 0, 1, 1), (0.5, 0.5), 0.5, 1, 1))
    assert calibration.score(region).score == 50  # sigmoid(0.5 × 2 − 1) = 0.5
    calibration.save(tmp_path / "calibration.json")
    assert Calibration.load(tmp_path / "calibration.json") == calibration
    (tmp_path / "bad.json").write_text(json.dumps({"operating_logit": {"mass": 0.4}}))
    with pytest.raises(ModelError, match="bad.json"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(ModelError, match="ascending"):
        _calibration((0.5,) * 8 + (0.1,))


def _region(kind: str, depth: float, p: float = 0.9) -> Region:
    return Region(kind, (0, 0, 1, 1), (0.5, 0.5), p, 1.0, depth)


def test_linking_by_distance_from_the_nipple() -> None:
    cc = [_region("mass", 40.0), _region("calcification_cluster", 70.0), _region("mass", 90.0)]
    mlo = [_region("mass", 88.0), _region("mass", 43.0), _region("calcification_cluster", 20.0)]
    assert link_views(cc, mlo, tolerance_mm=10.0) == [(0, 1), (2, 0)]
    assert link_views(cc, mlo, tolerance_mm=1.0) == []


def test_a_transient_runtime_error_stays_retryable() -> None:
    from models.errors import RetryLater
    from models.mammography.analysis import analyse_view

    exam = make_exam(5, PhantomConfig(spacing_mm=0.25))
    pv = exam.views[("L", "CC")]

    def down(x: np.ndarray) -> np.ndarray:
        raise RetryLater("triton 127.0.0.1:8001 unavailable")

    with pytest.raises(RetryLater, match="unavailable"):
        analyse_view(pv.image, "L", "CC", (1.3, 2.0), down)
