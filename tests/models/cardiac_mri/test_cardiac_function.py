"""Method of discs (with the gap), ED/ES, EF, mass, RV, cardiac output, BSA and reference flags."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.cardiac_mri.function import (
    DiscGeometry,
    LabelMasks,
    bsa_mosteller_m2,
    cardiac_function,
    cardiac_output_l_min,
    disc_volume_ml,
    ed_es_phases,
    ejection_fraction_pct,
    lv_mass_g,
    volume_curve_ml,
)
from models.cardiac_mri.reference import Flag, flag, reference_range
from models.errors import ModelError


def test_disc_volume_includes_the_gap() -> None:
    areas = [1000.0, 2000.0, 1500.0]
    assert disc_volume_ml(areas, 8.0, 2.0) == pytest.approx(45.0)  # 4500 mm² x 10 mm
    assert disc_volume_ml(areas, 8.0, 0.0) == pytest.approx(36.0)  # without a gap: 20 % less


def test_disc_volume_rejects_bad_geometry() -> None:
    with pytest.raises(ModelError):
        disc_volume_ml([100.0], 8.0, -8.0)


def test_disc_volume_rejects_negative_area() -> None:
    with pytest.raises(ModelError):
        disc_volume_ml([-1.0], 8.0, 0.0)


def test_volume_curve_counts_pixels_times_area_times_thickness_plus_gap() -> None:
    geom = DiscGeometry((1.5, 2.0), 6.0, 4.0)  # 3 mm² pixels, discs of 10 mm
    masks = np.zeros((2, 3, 10, 10), dtype=bool)
    masks[0, 0, :5, :4] = True  # 20 px
    masks[0, 2, :10, :10] = True  # 100 px
    masks[1, 1, :2, :2] = True  # 4 px
    assert volume_curve_ml(masks, geom) == pytest.approx([120 * 3 * 10 / 1000, 4 * 3 * 10 / 1000])


def test_ed_es_are_largest_and_smallest_earliest_on_ties() -> None:
    assert ed_es_phases([100.0, 120.0, 80.0, 120.0, 80.0]) == (1, 2)


def test_ed_es_needs_two_phases() -> None:
    with pytest.raises(ModelError):
        ed_es_phases([100.0])


def test_ejection_fraction() -> None:
    assert ejection_fraction_pct(150.0, 60.0) == pytest.approx(60.0)
    assert ejection_fraction_pct(100.0, 100.0) == 0.0


@pytest.mark.parametrize(("edv", "esv"), [(0.0, 0.0), (100.0, 120.0), (100.0, -1.0)])
def test_ejection_fraction_rejects_impossible_volumes(edv: float, esv: float) -> None:
    with pytest.raises(ModelError):
        ejection_fraction_pct(edv, esv)


def test_mass_is_myocardial_volume_times_1_05() -> None:
    assert lv_mass_g(100.0) == pytest.approx(105.0)


def test_cardiac_output_and_bsa() -> None:
    assert cardiac_output_l_min(90.0, 60.0) == pytest.approx(5.4)
    assert bsa_mosteller_m2(180.0, 80.0) == pytest.approx(2.0)
    assert bsa_mosteller_m2(165.0, 60.0) == pytest.approx(math.sqrt(165 * 60 / 3600))


def test_bsa_rejects_zero_weight() -> None:
    with pytest.raises(ModelError):
        bsa_mosteller_m2(170.0, 0.0)


def _masks() -> LabelMasks:
    """3 phases x 2 slices of 20x20 px at 1 mm², discs of 10 mm (8 mm + 2 mm gap): 1 px = 0.01 ml."""
    shape = (3, 2, 20, 20)
    lv, myo, rv = (np.zeros(shape, dtype=bool) for _ in range(3))
    lv[0, :, :10, :10] = True  # 200 px -> 2.0 ml (ED)
    lv[1, :, :5, :10] = True  # 100 px -> 1.0 ml
    lv[2, :, :6, :5] = True  # 60 px -> 0.6 ml (ES)
    myo[0, :, 10:15, :10] = True  # 100 px at ED -> 1.0 ml -> 1.05 g
    myo[2, :, 10:20, :20] = True  # thicker at ES: must NOT be used for mass
    rv[0, 0, :4, :5] = True  # 20 px -> 0.2 ml (its smallest)
    rv[1, :, :10, :15] = True  # 300 px -> 3.0 ml (its largest, at LV phase 1)
    rv[2, 0, :5, :10] = True  # 50 px
    return LabelMasks(lv, myo, rv)


def test_cardiac_function_from_masks() -> None:
    func = cardiac_function(_masks(), DiscGeometry((1.0, 1.0), 8.0, 2.0), heart_rate_bpm=60.0, bsa_m2=2.0)
    assert (func.lv.ed_phase, func.lv.es_phase) == (0, 2)
    assert func.lv.edv_ml == pytest.approx(2.0) and func.lv.esv_ml == pytest.approx(0.6)
    assert func.lv.sv_ml == pytest.approx(1.4) and func.lv.ef_pct == pytest.approx(70.0)
    assert func.lv_mass_g == pytest.approx(1.05)
    assert func.rv is not None and (func.rv.ed_phase, func.rv.es_phase) == (1, 0)
    assert func.rv.edv_ml == pytest.approx(3.0) and func.rv.esv_ml == pytest.approx(0.2)
    assert func.cardiac_output_l_min == pytest.approx(1.4 * 60 / 1000)
    assert func.indexed(func.lv.edv_ml) == pytest.approx(1.0)


def test_no_heart_rate_no_output_no_bsa_no_index() -> None:
    func = cardiac_function(_masks(), DiscGeometry((1.0, 1.0), 8.0, 2.0))
    assert func.cardiac_output_l_min is None and func.indexed(func.lv.edv_ml) is None


def test_no_lv_pool_is_an_error() -> None:
    empty = np.zeros((2, 1, 4, 4), dtype=bool)
    with pytest.raises(ModelError):
        cardiac_function(LabelMasks(empty, empty, empty), DiscGeometry((1.0, 1.0), 8.0, 0.0))


@pytest.mark.parametrize(
    ("measure", "sex", "value", "expected"),
    [
        ("EDVi", "M", 57.0, Flag.NORMAL), ("EDVi", "M", 56.9, Flag.LOW), ("EDVi", "M", 105.0, Flag.NORMAL),
        ("EDVi", "M", 105.1, Flag.HIGH), ("EDVi", "F", 56.0, Flag.NORMAL), ("EDVi", "F", 55.9, Flag.LOW),
        ("EDVi", "F", 96.0, Flag.NORMAL), ("EDVi", "F", 96.1, Flag.HIGH),
        ("ESVi", "M", 14.0, Flag.NORMAL), ("ESVi", "M", 38.1, Flag.HIGH), ("ESVi", "F", 34.0, Flag.NORMAL),
        ("ESVi", "F", 34.1, Flag.HIGH), ("ESVi", "F", 13.9, Flag.LOW),
        ("EF", "M", 57.0, Flag.NORMAL), ("EF", "M", 56.9, Flag.LOW), ("EF", "F", 77.0, Flag.NORMAL),
        ("EF", "F", 77.1, Flag.HIGH),
        ("LVMi", "M", 49.0, Flag.NORMAL), ("LVMi", "M", 48.9, Flag.LOW), ("LVMi", "M", 85.1, Flag.HIGH),
        ("LVMi", "F", 41.0, Flag.NORMAL), ("LVMi", "F", 81.0, Flag.NORMAL), ("LVMi", "F", 81.1, Flag.HIGH),
    ],
)
def test_reference_flags_mean_plus_minus_2sd_inclusive(measure: str, sex: str, value: float, expected: Flag) -> None:
    assert flag(measure, value, sex) is expected


def test_no_flag_without_sex_or_value() -> None:
    assert flag("EF", 30.0, "O") is None
    assert flag("EDVi", None, "M") is None
    assert reference_range("EF", None) is None


def test_unknown_measure_is_an_error() -> None:
    with pytest.raises(ModelError):
        flag("RVEF", 50.0, "M")
