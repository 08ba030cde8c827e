"""Lung-RADS v2022 per nodule and per exam, at every size boundary; Fleischner 2017 texts."""
from __future__ import annotations

import pytest

from models.lung_nodules.fleischner import Risk, fleischner_recommendation
from models.lung_nodules.lungrads import (
    LungRads,
    LungRadsError,
    NoduleForRads,
    NoduleStatus,
    NoduleType,
    exam_category,
    nodule_category,
)

S, PS, GG = NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS
B, N, G, ST = NoduleStatus.BASELINE, NoduleStatus.NEW, NoduleStatus.GROWING, NoduleStatus.STABLE


@pytest.mark.parametrize("size, status, expected", [
    (5.9, B, "2"), (6.0, B, "3"), (7.9, B, "3"), (8.0, B, "4A"), (14.9, B, "4A"), (15.0, B, "4B"),
    (3.9, N, "2"), (4.0, N, "3"), (5.9, N, "3"), (6.0, N, "4A"), (7.9, N, "4A"), (8.0, N, "4B"),
    (3.0, G, "4A"), (7.9, G, "4A"), (8.0, G, "4B"),
    (6.0, ST, "3"),
])
def test_solid(size: float, status: NoduleStatus, expected: str) -> None:
    assert nodule_category(NoduleForRads(S, size, status=status)).value == expected


@pytest.mark.parametrize("size, juxta, benign, status, expected", [
    (9.9, True, True, B, "2"),
    (10.0, True, True, B, "4A"),
    (9.9, True, False, B, "4A"),   # no benign features: size rule
    (9.9, False, True, B, "4A"),   # not juxtapleural
    (9.9, True, True, N, "2"),
    (7.0, True, True, G, "4A"),    # growing: the rule does not apply
])
def test_juxtapleural_benign_rule(size: float, juxta: bool, benign: bool, status: NoduleStatus, expected: str) -> None:
    n = NoduleForRads(S, size, status=status, juxtapleural=juxta, benign_features=benign)
    assert nodule_category(n).value == expected


@pytest.mark.parametrize("total, solid, status, expected", [
    (5.9, 3.0, B, "2"), (6.0, 5.9, B, "3"), (9.0, 6.0, B, "4A"), (9.0, 7.9, B, "4A"), (9.0, 8.0, B, "4B"),
    (5.9, 2.0, N, "3"), (6.0, 3.9, N, "4A"), (6.0, 4.0, N, "4B"),
    (12.0, 3.9, G, "4A"), (12.0, 4.0, G, "4B"),
])
def test_part_solid(total: float, solid: float, status: NoduleStatus, expected: str) -> None:
    assert nodule_category(NoduleForRads(PS, total, solid, status=status)).value == expected


@pytest.mark.parametrize("size, status, expected", [
    (29.9, B, "2"), (30.0, B, "3"), (30.0, N, "3"), (30.0, G, "3"), (35.0, ST, "2"),
])
def test_ground_glass(size: float, status: NoduleStatus, expected: str) -> None:
    assert nodule_category(NoduleForRads(GG, size, status=status)).value == expected


def test_exam_is_the_highest_category_and_1_without_nodules() -> None:
    assert exam_category([]) is LungRads.CAT_1
    nodules = [NoduleForRads(S, 5.0), NoduleForRads(PS, 9.0, 8.0), NoduleForRads(GG, 31.0)]
    assert exam_category(nodules) is LungRads.CAT_4B
    assert exam_category(nodules[::2]) is LungRads.CAT_3


def test_inconsistent_part_solid_is_refused() -> None:
    with pytest.raises(LungRadsError, match="solid_diameter"):
        NoduleForRads(PS, 9.0)
    with pytest.raises(LungRadsError, match="larger than the nodule"):
        NoduleForRads(PS, 5.0, 6.0)


@pytest.mark.parametrize("size, risk, text", [
    (5.9, Risk.LOW, "No routine follow-up."),
    (5.9, Risk.HIGH, "Optional CT at 12 months."),
    (6.0, Risk.LOW, "CT at 6-12 months, then consider CT at 18-24 months."),
    (8.0, Risk.HIGH, "CT at 6-12 months, then CT at 18-24 months."),
    (8.1, Risk.LOW, "Consider CT at 3 months, PET/CT, or tissue sampling."),
])
def test_fleischner_single_solid(size: float, risk: Risk, text: str) -> None:
    assert fleischner_recommendation([(S, size)], risk).endswith(text)


def test_fleischner_multiple_subsolid_and_age() -> None:
    assert "CT at 3-6 months, then consider CT at 18-24 months." in fleischner_recommendation(
        [(S, 7.0), (S, 4.0)], Risk.LOW)
    assert "Low risk:" in fleischner_recommendation([(S, 7.0)]) and "High risk:" in fleischner_recommendation([(S, 7.0)])
    assert fleischner_recommendation([(GG, 6.0)]).endswith("then CT every 2 years until 5 years.")
    assert fleischner_recommendation([(PS, 5.9)]).endswith("No routine follow-up.")
    assert "annual CT" in fleischner_recommendation([(PS, 6.0)])
    assert "consider CT at 2 and 4 years" in fleischner_recommendation([(GG, 4.0), (PS, 5.0)])
    assert "does not apply" in fleischner_recommendation([(S, 9.0)], age_years=34)
    assert "Consider CT at 3 months" in fleischner_recommendation([(S, 9.0)], age_years=35)
