"""CAD-RADS 2.0 stenosis categories and plaque burden at every boundary, incl. CAC exactly 1000."""
from __future__ import annotations

import pytest

from models.coronary_ct.cadrads import cad_rads, percent_diameter_stenosis, plaque_burden, report_string, stenosis_grade
from models.coronary_ct.calcium import Vessel
from models.errors import ModelError


@pytest.mark.parametrize(
    ("pct", "grade"),
    [(0, "0"), (0.4, "0"), (1, "1"), (24, "1"), (24.4, "1"), (24.5, "2"), (25, "2"), (49, "2"), (50, "3"),
     (69, "3"), (70, "4A"), (99, "4A"), (99.4, "4A"), (100, "5")],
)
def test_stenosis_grade(pct: float, grade: str) -> None:
    assert stenosis_grade(pct) == grade


@pytest.mark.parametrize("pct", [-1, 100.1])
def test_stenosis_out_of_range(pct: float) -> None:
    with pytest.raises(ModelError):
        stenosis_grade(pct)


@pytest.mark.parametrize(
    ("stenoses", "category"),
    [
        ({}, "0"),
        ({Vessel.LAD: 30, Vessel.RCA: 10}, "2"),
        ({Vessel.LM: 49}, "2"),
        ({Vessel.LM: 50}, "4B"),
        ({Vessel.LAD: 70, Vessel.LCX: 70}, "4A"),
        ({Vessel.LAD: 70, Vessel.LCX: 75, Vessel.RCA: 69}, "4A"),
        ({Vessel.LAD: 70, Vessel.LCX: 75, Vessel.RCA: 70}, "4B"),
        ({Vessel.LM: 60, Vessel.RCA: 100}, "5"),
    ],
)
def test_patient_category(stenoses: dict[Vessel, float], category: str) -> None:
    assert cad_rads(stenoses) == category


def test_not_coronary_key_is_rejected() -> None:
    with pytest.raises(ModelError):
        cad_rads({Vessel.NONE: 10})


@pytest.mark.parametrize(
    ("cac", "burden"),
    [(0, None), (0.3, "P1"), (1, "P1"), (100, "P1"), (100.4, "P1"), (100.5, "P2"), (101, "P2"), (300, "P2"),
     (301, "P3"), (999, "P3"), (999.4, "P3"), (999.5, "P4"), (1000, "P4"), (4000, "P4")],
)
def test_plaque_burden_boundaries_incl_exactly_1000_is_p4(cac: float, burden: str | None) -> None:
    assert plaque_burden(cac) == burden


def test_report_string() -> None:
    assert report_string("3", "P2") == "CAD-RADS 3/P2"
    assert report_string("0", "P1") == "CAD-RADS 0"
    assert report_string("4B", None) == "CAD-RADS 4B"


def test_percent_diameter_stenosis_uses_mean_reference() -> None:
    assert percent_diameter_stenosis(1.5, 3.0) == pytest.approx(50.0)
    assert percent_diameter_stenosis(1.0, 3.0, 2.0) == pytest.approx(60.0)  # reference 2.5 mm
    assert percent_diameter_stenosis(0.0, 3.0) == pytest.approx(100.0)
    assert percent_diameter_stenosis(3.5, 3.0) == 0.0
    assert stenosis_grade(percent_diameter_stenosis(0.9, 3.0)) == "4A"  # 70 %


def test_percent_diameter_stenosis_rejects_zero_reference() -> None:
    with pytest.raises(ModelError):
        percent_diameter_stenosis(1.0, 0.0)
