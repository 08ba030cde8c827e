"""Agatston, volume and mass scores and CAC-DRS, with hand-computed cases at every boundary."""
from __future__ import annotations

import numpy as np
import pytest

from models.coronary_ct.calcium import (
    Lesion,
    ScanGeometry,
    Vessel,
    agatston_weight,
    cac_drs,
    find_lesions,
    normalised_agatston,
    score,
)
from models.errors import ModelError

HALF_MM = ScanGeometry((0.5, 0.5), 3.0)  # pixel area 0.25 mm²: 4 pixels = exactly 1 mm²


@pytest.mark.parametrize(
    ("peak", "weight"),
    [(129.0, 0), (129.99, 0), (130.0, 1), (199.0, 1), (199.99, 1), (200.0, 2), (299.0, 2),
     (300.0, 3), (399.0, 3), (399.99, 3), (400.0, 4), (1500.0, 4)],
)
def test_weight_from_peak_hu_inclusive_at_low_end(peak: float, weight: int) -> None:
    assert agatston_weight(peak) == weight


def _volume(n_slices: int = 1, size: int = 20) -> np.ndarray:
    return np.full((n_slices, size, size), 40.0, dtype=np.float32)  # blood, below threshold


def test_threshold_130_is_a_candidate_129_is_not() -> None:
    hu = _volume()
    hu[0, 2:4, 2:4] = 130.0  # 4 px = 1 mm²
    hu[0, 10:12, 10:12] = 129.0
    lesions = find_lesions(hu, HALF_MM)
    assert len(lesions) == 1
    assert lesions[0].peak_hu == 130.0 and lesions[0].weight == 1


def test_area_limit_1_mm2_is_counted_below_is_not() -> None:
    hu = _volume()
    hu[0, 2:4, 2:4] = 300.0  # 4 px x 0.25 = 1.00 mm² -> counted
    hu[0, 10, 10:13] = 300.0  # 3 px = 0.75 mm² -> noise
    lesions = find_lesions(hu, HALF_MM)
    assert [les.area_mm2 for les in lesions] == [1.0]


def test_area_limit_with_non_dyadic_pixel_spacing() -> None:
    geom = ScanGeometry((0.7, 0.7), 3.0)  # 0.49 mm² per pixel: 2 px = 0.98 (out), 3 px = 1.47 (in)
    hu = _volume()
    hu[0, 2, 2:4] = 500.0
    hu[0, 10, 10:13] = 500.0
    lesions = find_lesions(hu, geom)
    assert len(lesions) == 1
    assert lesions[0].area_mm2 == pytest.approx(1.47)


def test_eight_connectivity_joins_diagonal_pixels_within_a_slice_only() -> None:
    hu = _volume(n_slices=2)
    for i in range(4):  # a diagonal line of 4 pixels: one lesion with 8-connectivity
        hu[0, 5 + i, 5 + i] = 250.0
    hu[1, 5:7, 5:7] = 250.0  # directly below on the next slice: a separate (2D) lesion
    lesions = find_lesions(hu, HALF_MM)
    assert [(les.slice_index, les.pixels.shape[0]) for les in lesions] == [(0, 4), (1, 4)]


def test_weight_uses_peak_not_mean() -> None:
    hu = _volume()
    hu[0, 2:4, 2:4] = 150.0
    hu[0, 2, 2] = 400.0  # one bright pixel lifts the whole lesion to weight 4
    (les,) = find_lesions(hu, HALF_MM)
    assert les.weight == 4
    assert les.mean_hu == pytest.approx((3 * 150 + 400) / 4)
    assert les.agatston_raw == pytest.approx(4.0)


def _three_lesions() -> tuple[list[Lesion], np.ndarray]:
    hu = _volume(n_slices=2, size=30)
    hu[0, 2:4, 2:4] = 130.0  # 1 mm², weight 1 -> 1
    hu[0, 10:12, 10:14] = 250.0  # 2 mm², weight 2 -> 4
    hu[1, 20:23, 20:24] = 399.0  # 3 mm², weight 3 -> 9
    hu[1, 20, 20] = 400.0  # peak 400 -> weight 4 -> 12
    return find_lesions(hu, HALF_MM), hu


def test_agatston_volume_and_count_per_vessel_and_total() -> None:
    lesions, _ = _three_lesions()
    assert [les.weight for les in lesions] == [1, 2, 4]
    result = score(lesions, [Vessel.LAD, Vessel.LAD, Vessel.RCA], HALF_MM)
    assert result.vessels[Vessel.LAD].agatston == pytest.approx(1 + 4)
    assert result.vessels[Vessel.RCA].agatston == pytest.approx(12)
    assert result.vessels[Vessel.LM].agatston == 0 and result.vessels[Vessel.LCX].lesion_count == 0
    assert result.total.agatston == pytest.approx(17)
    assert result.total.lesion_count == 3
    # 4 + 8 + 12 calcified pixels x 0.25 mm² x 3 mm increment
    assert result.total.volume_mm3 == pytest.approx(24 * 0.25 * 3.0)
    assert result.total.mass_mg is None
    assert result.cac_drs == "A1/N2"


def test_not_coronary_lesions_are_excluded() -> None:
    lesions, _ = _three_lesions()
    result = score(lesions, [Vessel.NONE, Vessel.LM, Vessel.NONE], HALF_MM)
    assert result.total.agatston == pytest.approx(4)
    assert result.total.lesion_count == 1
    assert result.vessels[Vessel.LM].agatston == pytest.approx(4)


@pytest.mark.parametrize(("increment", "expected"), [(3.0, 17.0), (1.5, 8.5), (2.5, 17 * 2.5 / 3), (5.0, 17 * 5 / 3)])
def test_3mm_normalisation_raw_times_increment_over_3(increment: float, expected: float) -> None:
    lesions, _ = _three_lesions()
    geom = ScanGeometry((0.5, 0.5), increment)
    result = score(lesions, [Vessel.LAD] * 3, geom)
    assert result.total.agatston_raw == pytest.approx(17.0)
    assert result.total.agatston == pytest.approx(expected)
    assert result.total.volume_mm3 == pytest.approx(24 * 0.25 * increment)  # volume is not normalised


def test_normalisation_rejects_zero_increment() -> None:
    with pytest.raises(ModelError):
        normalised_agatston(10.0, 0.0)


def test_mass_score_only_with_calibration() -> None:
    lesions, _ = _three_lesions()
    result = score(lesions, [Vessel.LAD] * 3, HALF_MM, calibration_mg_per_cm3_hu=0.8)
    # mass = c x sum(area x increment / 1000 x mean HU)
    mean_c = (11 * 399 + 400) / 12
    expected = 0.8 * (1.0 * 3 / 1000 * 130 + 2.0 * 3 / 1000 * 250 + 3.0 * 3 / 1000 * mean_c)
    assert result.total.mass_mg == pytest.approx(expected)
    assert result.vessels[Vessel.LAD].mass_mg == pytest.approx(expected)
    assert result.vessels[Vessel.RCA].mass_mg == 0.0


def test_calibration_must_be_positive() -> None:
    lesions, _ = _three_lesions()
    with pytest.raises(ModelError):
        score(lesions, [Vessel.LAD] * 3, HALF_MM, calibration_mg_per_cm3_hu=0.0)


def test_labels_must_match_lesions() -> None:
    lesions, _ = _three_lesions()
    with pytest.raises(ModelError):
        score(lesions, [Vessel.LAD], HALF_MM)


@pytest.mark.parametrize(
    ("total", "n", "category"),
    [(0.0, 0, "A0"), (0.4, 1, "A1/N1"), (1.0, 1, "A1/N1"), (99.0, 2, "A1/N2"), (99.49, 2, "A1/N2"),
     (99.5, 2, "A2/N2"), (100.0, 3, "A2/N3"), (299.0, 3, "A2/N3"), (299.5, 4, "A3/N4"), (300.0, 4, "A3/N4"),
     (2500.0, 4, "A3/N4")],
)
def test_cac_drs_boundaries(total: float, n: int, category: str) -> None:
    assert cac_drs(total, n) == category


@pytest.mark.parametrize(("total", "n"), [(-1.0, 0), (0.0, 1), (5.0, 0), (5.0, 5)])
def test_cac_drs_rejects_inconsistent_input(total: float, n: int) -> None:
    with pytest.raises(ModelError):
        cac_drs(total, n)


def test_empty_scan_scores_zero_a0() -> None:
    result = score(find_lesions(_volume(n_slices=3), HALF_MM), [], HALF_MM)
    assert result.total.agatston == 0 and result.total.lesion_count == 0
    assert result.cac_drs == "A0"


def test_find_lesions_rejects_2d_input() -> None:
    with pytest.raises(ModelError):
        find_lesions(np.zeros((4, 4)), HALF_MM)
