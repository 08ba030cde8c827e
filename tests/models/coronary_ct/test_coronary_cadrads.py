"""CAD-RADS 2.0 (Cury 2022, JCCT 16:536) stenosis categories, plaque burden and modifiers at every boundary:
99.5 % is 4A (only a total occlusion is 5), calcium with 0 % stenosis is 1 (0 needs no plaque), CAC exactly
1000 is P4 (the rule chosen where the paper's bands leave 1000 out), modifiers N, HRP, I, S, G, E."""
from __future__ import annotations

import pytest

from models.coronary_ct.cadrads import (
    CadRadsInput,
    Ischemia,
    assess,
    cad_rads,
    percent_diameter_stenosis,
    plaque_burden,
    report_string,
    stenosis_grade,
)
from models.coronary_ct.calcium import Vessel
from models.errors import ModelError


@pytest.mark.parametrize(
    ("pct", "grade"),
    [(0, "0"), (0.4, "1"), (1, "1"), (24, "1"), (24.4, "1"), (24.5, "2"), (25, "2"), (49, "2"), (50, "3"),
     (69, "3"), (70, "4A"), (99, "4A"), (99.4, "4A"), (99.5, "4A"), (99.99, "4A"), (100, "5")],
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


def test_sub_total_stenosis_is_never_rounded_into_occlusion() -> None:
    # Cury 2022: 5 = total occlusion (100 %); 4A = 70-99 %. A 99.5 % LAD is 4A, with an LM below 50 %.
    assert cad_rads({Vessel.LAD: 99.5, Vessel.LM: 20}) == "4A"
    assert cad_rads({Vessel.LAD: 99.5, Vessel.LCX: 99.5, Vessel.RCA: 99.5}) == "4B"  # three-vessel, not 5
    assert cad_rads({Vessel.LAD: 100}) == "5"


@pytest.mark.parametrize(("found", "category"), [
    (CadRadsInput({}), "0"),                                        # no plaque, no stenosis
    (CadRadsInput({}, agatston=0.0), "0"),
    (CadRadsInput({Vessel.LAD: 0}, agatston=12.0), "1"),            # calcium present with 0 % stenosis
    (CadRadsInput({}, plaque_present=True), "1"),                   # non-calcified plaque, no stenosis
    (CadRadsInput({Vessel.RCA: 30}, agatston=12.0), "2"),           # the stenosis decides when above 1
])
def test_category_0_only_without_plaque(found: CadRadsInput, category: str) -> None:
    assert assess(found).category == category


def test_calcium_with_no_stenosis_reports_1_with_its_burden_and_reason() -> None:
    result = assess(CadRadsInput({Vessel.LAD: 0.0}, agatston=150.0))
    assert result.report == "CAD-RADS 1/P2"
    assert result.reasons == ("1: plaque with no stenosis (coronary calcium present)",)


def test_modifiers_in_reporting_order() -> None:
    found = CadRadsInput({Vessel.LAD: 75, Vessel.RCA: 40}, agatston=250.0, non_diagnostic=True,
                         high_risk_plaque=True, ischemia=Ischemia.POSITIVE, stent=True, graft=True, exception=True)
    result = assess(found)
    assert result.category == "4A" and result.burden == "P2"
    assert result.modifiers == ("HRP", "I+", "S", "G", "E", "N")
    assert result.report == "CAD-RADS 4A/P2/HRP/I+/S/G/E/N"
    assert any(r.startswith("N: non-diagnostic") for r in result.reasons)


@pytest.mark.parametrize(("ischemia", "text"), [(Ischemia.POSITIVE, "I+"), (Ischemia.NEGATIVE, "I-"),
                                                (Ischemia.BORDERLINE, "I±")])
def test_ischemia_modifier(ischemia: Ischemia, text: str) -> None:
    assert assess(CadRadsInput({Vessel.LAD: 60}, ischemia=ischemia)).report == f"CAD-RADS 3/{text}"


def test_no_modifiers_and_no_burden_without_cac() -> None:
    result = assess(CadRadsInput({Vessel.LM: 55}))
    assert result.report == "CAD-RADS 4B" and result.modifiers == () and result.burden is None


def test_category_0_carries_no_burden() -> None:
    assert assess(CadRadsInput({}, agatston=0.0, stent=True)).report == "CAD-RADS 0/S"


def test_assess_rejects_negative_cac() -> None:
    with pytest.raises(ModelError):
        assess(CadRadsInput({}, agatston=-1.0))
