"""Fleischner 2017 (MacMahon et al., Radiology 2017;284:228, Table 1 solid and Table 2 subsolid nodules, single and
multiple): the average diameter rounded to the nearest millimetre before banding, only for incidental findings in
adults >= 35, risk and indication per study from tag rules, age from the DICOM header."""
from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from models.errors import ModelError
from models.lung_nodules.context import parse_rules, patient_age_years, study_context
from models.lung_nodules.fleischner import Indication, Risk, fleischner_recommendation, rounded_mm
from models.lung_nodules.lungrads import NoduleType
from models.lung_nodules.pipeline import LungSettings

S, PS, GG = NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS
INC = Indication.INCIDENTAL


def _rec(nodules: list[tuple[NoduleType, float]], risk: Risk = Risk.UNKNOWN, age: int | None = 60,
         indication: Indication = INC) -> str:
    return fleischner_recommendation(nodules, risk, age, indication)


@pytest.mark.parametrize("mean, whole", [(5.4, 5), (5.5, 6), (5.6, 6), (6.5, 7), (8.4, 8), (8.5, 9), (0.5, 1)])
def test_rounding_to_the_nearest_millimetre_half_up(mean: float, whole: int) -> None:
    assert rounded_mm(mean) == whole


@pytest.mark.parametrize("size, risk, text", [
    (5.4, Risk.LOW, "No routine follow-up."),                                   # 5 mm: < 6 mm
    (5.4, Risk.HIGH, "Optional CT at 12 months."),
    (5.6, Risk.LOW, "CT at 6-12 months, then consider CT at 18-24 months."),    # the case: 5.6 -> 6 mm
    (5.5, Risk.LOW, "CT at 6-12 months, then consider CT at 18-24 months."),
    (8.4, Risk.HIGH, "CT at 6-12 months, then CT at 18-24 months."),            # 8 mm: still 6-8 mm
    (8.5, Risk.LOW, "Consider CT at 3 months, PET/CT, or tissue sampling."),    # 9 mm: > 8 mm
])
def test_single_solid_table_1(size: float, risk: Risk, text: str) -> None:
    out = _rec([(S, size)], risk)
    assert out.endswith(text)
    assert f"{size:.1f} mm (rounded {rounded_mm(size)} mm)" in out


def test_unknown_risk_gives_both_texts() -> None:
    out = _rec([(S, 7.0)])
    assert "Low risk: CT at 6-12 months, then consider CT at 18-24 months." in out
    assert "High risk: CT at 6-12 months, then CT at 18-24 months." in out


@pytest.mark.parametrize("sizes, risk, text", [
    ([5.4, 4.0], Risk.LOW, "No routine follow-up."),
    ([5.4, 4.0], Risk.HIGH, "Optional CT at 12 months."),
    ([5.5, 4.0], Risk.LOW, "CT at 3-6 months, then consider CT at 18-24 months."),  # largest rounds to 6
    ([8.5, 4.0], Risk.HIGH, "CT at 3-6 months, then CT at 18-24 months."),
])
def test_multiple_solid_table_1(sizes: list[float], risk: Risk, text: str) -> None:
    out = _rec([(S, d) for d in sizes], risk)
    assert out.endswith(text) and "Solid nodules, largest" in out


@pytest.mark.parametrize("nodules, text", [
    ([(GG, 5.4)], "Ground-glass nodule 5.4 mm (rounded 5 mm): No routine follow-up."),
    ([(GG, 5.5)], "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years."),
    ([(PS, 5.4)], "Part-solid nodule 5.4 mm (rounded 5 mm): No routine follow-up."),
    ([(PS, 5.6)], "CT at 3-6 months to confirm persistence. If unchanged and solid component remains < 6 mm, "
                  "annual CT should be performed for 5 years."),
    ([(GG, 4.0), (PS, 5.4)], "CT at 3-6 months. If stable, consider CT at 2 and 4 years."),
    ([(GG, 4.0), (PS, 5.5)], "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s)."),
])
def test_subsolid_table_2(nodules: list[tuple[NoduleType, float]], text: str) -> None:
    assert _rec(nodules).endswith(text)


def test_solid_and_subsolid_both_given() -> None:
    out = _rec([(S, 7.0), (GG, 4.0)], Risk.LOW)
    assert "Solid nodule 7.0 mm" in out and "Ground-glass nodule 4.0 mm" in out


@pytest.mark.parametrize("age, applies", [(34, False), (35, True), (80, True)])
def test_adults_35_and_older_only(age: int, applies: bool) -> None:
    out = _rec([(S, 9.0)], age=age)
    assert ("Consider CT at 3 months" in out) == applies
    assert ("not applied: patient younger than 35" in out) == (not applies)
    assert str(age) not in out.replace(">= 35", "")  # the patient's age is never in the text


def test_screening_gets_lung_rads_only_and_unknowns_are_stated() -> None:
    screening = _rec([(S, 9.0)], indication=Indication.SCREENING)
    assert screening.endswith("not applied: screening exam (Lung-RADS only).")
    unknown = _rec([(S, 9.0)], age=None, indication=Indication.UNKNOWN)
    assert "Consider CT at 3 months" in unknown
    assert "Patient age not in the DICOM header" in unknown and "Indication not known" in unknown
    assert "not in the DICOM header" not in _rec([(S, 9.0)]) and "Indication not known" not in _rec([(S, 9.0)])


def _header(**attrs: str) -> Dataset:
    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("attrs, years", [
    ({"PatientAge": "065Y"}, 65),
    ({"PatientAge": "034Y", "PatientBirthDate": "19500101", "StudyDate": "20250101"}, 34),  # PatientAge first
    ({"PatientAge": "030M"}, 2),
    ({"PatientAge": "004W"}, 0),
    ({"PatientAge": "010D"}, 0),
    ({"PatientAge": "65", "PatientBirthDate": "19900615", "StudyDate": "20250614"}, 34),  # malformed age: dates
    ({"PatientBirthDate": "19900615", "StudyDate": "20250615"}, 35),                      # birthday: 35
    ({"PatientBirthDate": "19900615"}, None),
    ({"PatientBirthDate": "20300101", "StudyDate": "20250101"}, None),
    ({}, None),
])
@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")  # the malformed PatientAge case, on purpose
def test_patient_age_from_the_header(attrs: dict[str, str], years: int | None) -> None:
    assert patient_age_years(_header(**attrs)) == years


RULES = [
    {"match": {"RequestedProcedureDescription": "(?i)screening|LDCT"}, "indication": "screening"},
    {"match": {"SmokingStatus": "^YES$"}, "fleischner_risk": "high"},
    {"match": {"Modality": "CT"}, "indication": "incidental", "fleischner_risk": "low"},
]


@pytest.mark.parametrize("attrs, indication, risk", [
    ({"Modality": "CT", "RequestedProcedureDescription": "LDCT lung screening", "SmokingStatus": "YES"},
     Indication.SCREENING, Risk.HIGH),
    ({"Modality": "CT", "SmokingStatus": "NO"}, Indication.INCIDENTAL, Risk.LOW),
    ({"Modality": "MR"}, Indication.UNKNOWN, Risk.UNKNOWN),     # no rule: the defaults
])
def test_indication_and_risk_per_study_first_matching_rule_wins(attrs: dict[str, str], indication: Indication,
                                                                risk: Risk) -> None:
    context = study_context(_header(PatientAge="070Y", **attrs), parse_rules(RULES))
    assert (context.indication, context.risk, context.age_years) == (indication, risk, 70)


def test_settings_read_the_rules_and_defaults() -> None:
    settings = LungSettings.from_mapping({"indication": "incidental", "fleischner_risk": "low", "rules": RULES})
    assert settings.indication is INC and settings.fleischner_risk is Risk.LOW and len(settings.rules) == 3
    assert LungSettings.from_mapping({}).indication is Indication.UNKNOWN


def test_the_old_site_wide_risk_key_names_its_replacements() -> None:
    with pytest.raises(ModelError, match=r"pipelines\.lung_nodules\.risk: .*rules.*fleischner_risk") as info:
        LungSettings.from_mapping({"risk": "high"})
    assert "pipelines.lung_nodules.fleischner_risk" in str(info.value)


@pytest.mark.parametrize("raw, message", [
    ({"indication": "emergency"}, r"pipelines\.lung_nodules\.indication: 'emergency' is not one of"),
    ({"fleischner_risk": "medium"}, r"pipelines\.lung_nodules\.fleischner_risk: 'medium'"),
    ({"rules": [{"match": {"Modality": "CT"}, "risk": "high"}]}, r"rules\[0\]: unknown keys \['risk'\]"),
    ({"rules": [{"match": {"Modality": "CT"}}]}, r"rules\[0\]: gives neither"),
    ({"rules": [{"match": {"NotAKeyword": "x"}, "indication": "screening"}]}, r"rules\[0\]\.match: .*DICOM keyword"),
    ({"rules": [{"match": {"Modality": "("}, "indication": "screening"}]}, r"rules\[0\]\.match: .*regular expr"),
    ({"rules": [{"indication": "screening", "fleischner_risk": "x"}]}, r"rules\[0\]\.fleischner_risk: 'x'"),
    ({"rules": {"indication": "screening"}}, r"rules: expected a list"),
])
def test_bad_context_settings_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        LungSettings.from_mapping(raw)


def test_the_service_refuses_the_old_key_at_start_up() -> None:
    from aiws.config import config_from_mapping
    from aiws.errors import ConfigError
    from aiws.pipelines import check_routes

    check_routes(config_from_mapping({"pipelines": {"lung_nodules": {"rules": RULES}}}))
    with pytest.raises(ConfigError, match=r"pipelines\.lung_nodules\.risk: .*pipelines\.lung_nodules\.fleischner_risk"):
        check_routes(config_from_mapping({"pipelines": {"lung_nodules": {"risk": "high"}}}))
