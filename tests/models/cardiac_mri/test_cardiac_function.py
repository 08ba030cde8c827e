"""Method of discs (with the gap), ED/ES, EF, mass, RV, cardiac output, BSA and reference flags."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.cardiac_mri.findings import CardiacFindings
from models.cardiac_mri.function import (
    DiscGeometry,
    LabelMasks,
    bsa_from_dicom,
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
        flag("LAEF", 50.0, "M")


# RV (Hudsmith 2005, JCMR 7:775, SSFP, as tabulated in Kawel-Boehm 2015): EDV men 190 +/- 33 ml, women 148 +/- 35;
# ESV men 78 +/- 20, women 56 +/- 18; EF men 59 +/- 6 %, women 63 +/- 5 %; normal = mean +/- 2 SD inclusive.
@pytest.mark.parametrize(
    ("measure", "sex", "value", "expected"),
    [
        ("RVEF", "M", 28.0, Flag.LOW), ("RVEF", "F", 28.0, Flag.LOW),       # the RV EF of 28 %
        ("RVEF", "M", 47.0, Flag.NORMAL), ("RVEF", "M", 46.9, Flag.LOW), ("RVEF", "M", 71.1, Flag.HIGH),
        ("RVEF", "F", 53.0, Flag.NORMAL), ("RVEF", "F", 52.9, Flag.LOW), ("RVEF", "F", 73.0, Flag.NORMAL),
        ("RVEDV", "M", 124.0, Flag.NORMAL), ("RVEDV", "M", 256.1, Flag.HIGH), ("RVEDV", "F", 77.9, Flag.LOW),
        ("RVEDV", "F", 218.0, Flag.NORMAL),
        ("RVESV", "M", 118.0, Flag.NORMAL), ("RVESV", "M", 118.1, Flag.HIGH), ("RVESV", "F", 92.1, Flag.HIGH),
        ("RVESV", "F", 19.9, Flag.LOW),
    ],
)
def test_rv_reference_flags(measure: str, sex: str, value: float, expected: Flag) -> None:
    assert flag(measure, value, sex) is expected


def test_rv_measures_are_flagged_in_the_findings() -> None:
    masks = _masks()
    func = cardiac_function(masks, DiscGeometry((1.0, 1.0), 8.0, 2.0))
    # RV EDV 3.0 ml, ESV 0.2 ml: both below the ranges, EF 93 % above; reported with flags like the LV's
    findings = CardiacFindings(func, np.zeros((3, 2, 20, 20), np.uint8), np.zeros(3), np.zeros(3), (0.0, 1.0, 2.0),
                               "F", "test")
    flags = {m.key: m.flag for m in findings.measures()}
    assert flags["RVEDV"] is Flag.LOW and flags["RVESV"] is Flag.LOW and flags["RVEF"] is Flag.HIGH
    assert flags["RVSV"] is None
    summary = findings.summary()
    assert summary["flags"]["RVEF"] == "high" and "bsa_note" in summary  # no BSA: no indexed values, and why


# Mosteller 1987 (N Engl J Med 317:1098): BSA = sqrt(height_cm x weight_kg / 3600), height in CENTIMETRES; DICOM
# Patient's Size (0010,1020) is in METRES. A height in cm taken as metres (x 100) gave 17,500 cm and ~18 m².
@pytest.mark.parametrize(("height_cm", "weight_kg"), [(17500.0, 70.0), (1.75, 70.0), (29.9, 70.0), (250.1, 70.0),
                                                      (175.0, 0.5), (175.0, 400.1)])
def test_bsa_refuses_implausible_height_or_weight(height_cm: float, weight_kg: float) -> None:
    with pytest.raises(ModelError, match="BSA"):
        bsa_mosteller_m2(height_cm, weight_kg)


def test_bsa_from_dicom_patient_size_in_metres_only() -> None:
    bsa, why = bsa_from_dicom(1.75, 70.0)
    assert bsa == pytest.approx(math.sqrt(175 * 70 / 3600)) and why is None       # 1.84 m²
    bsa, why = bsa_from_dicom(175.0, 70.0)   # centimetres where DICOM expects metres: refused, not ~18 m²
    assert bsa is None and "not a height in metres" in why and "175" not in why
    assert bsa_from_dicom(2.5, 70.0)[0] is not None and bsa_from_dicom(0.3, 70.0)[0] is not None
    assert bsa_from_dicom(2.51, 70.0)[0] is None and bsa_from_dicom(None, 70.0)[1].endswith("missing")
