"""Lung-RADS v2022 per nodule and per exam, at every size boundary (ACR Lung-RADS v2022 assessment categories,
Christensen et al., CHEST 2024;165:738, Table 1), with the rules beyond the size table that the outputs state."""
from __future__ import annotations

import pytest

from models.lung_nodules.lungrads import (
    JuxtapleuralFeatures,
    LungRads,
    LungRadsError,
    NoduleForRads,
    NoduleStatus,
    NoduleType,
    PleuralShape,
    assess,
    exam_category,
    nodule_category,
)

S, PS, GG = NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS
B, N, G, ST = NoduleStatus.BASELINE, NoduleStatus.NEW, NoduleStatus.GROWING, NoduleStatus.STABLE
GGG = NoduleStatus.GROUND_GLASS_GROWING
LENS, OVAL, ROUND, UNSURE = PleuralShape.LENTIFORM, PleuralShape.OVAL, PleuralShape.ROUND, PleuralShape.UNCERTAIN


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
    (10.0, True, True, B, "4A"),   # "< 10 mm": 10.0 keeps its size category
    (9.9, True, False, B, "4A"),   # no benign features: size rule
    (9.9, False, True, B, "4A"),   # not juxtapleural
    (9.9, True, True, N, "2"),     # v2022: "at baseline or new"
    (7.0, True, True, ST, "2"),
    (7.0, True, True, G, "4A"),    # growing: the rule does not apply
])
def test_juxtapleural_benign_rule(size: float, juxta: bool, benign: bool, status: NoduleStatus, expected: str) -> None:
    n = NoduleForRads(S, size, status=status, juxtapleural=juxta, benign_features=benign)
    assert nodule_category(n).value == expected


@pytest.mark.parametrize("smooth, shape, expected, rule", [
    (True, LENS, "2", "category 2: juxtapleural, smooth, lentiform, < 10 mm"),
    (True, OVAL, "2", "category 2: juxtapleural, smooth, oval, < 10 mm"),
    (True, PleuralShape.TRIANGULAR, "2", "category 2: juxtapleural, smooth, triangular, < 10 mm"),
    (True, ROUND, "4A", "size category kept: juxtapleural, round"),
    (True, UNSURE, "4A", "size category kept: juxtapleural, shape uncertain"),
    (False, LENS, "4A", "size category kept: juxtapleural, margin not smooth"),
    (None, LENS, "4A", "size category kept: juxtapleural, margin uncertain"),
])
def test_juxtapleural_rule_needs_all_features_and_says_which_applied(smooth: bool | None, shape: PleuralShape,
                                                                     expected: str, rule: str) -> None:
    """v2022: juxtapleural solid < 10 mm, smooth margins, oval/lentiform/triangular -> 2; the issue's case is a
    9.9 mm nodule (4A by size) that must not drop to 2 unless every feature is there, and must say why."""
    got = assess(NoduleForRads(S, 9.9, juxtapleural=True, features=JuxtapleuralFeatures(smooth, shape)))
    assert got.category.value == expected
    assert [r.text for r in got.rules] == [rule]
    assert all(len(r.code) <= 16 and len(r.text) <= 64 for r in got.rules)


def test_juxtapleural_rule_is_silent_where_it_changes_nothing() -> None:
    round_small = NoduleForRads(S, 5.0, juxtapleural=True, features=JuxtapleuralFeatures(True, ROUND))
    assert assess(round_small).category is LungRads.CAT_2 and assess(round_small).rules == ()
    large = NoduleForRads(S, 10.0, juxtapleural=True, features=JuxtapleuralFeatures(True, LENS))
    assert assess(large).category is LungRads.CAT_4A and assess(large).rules == ()
    # measured features win over the bare flag
    n = NoduleForRads(S, 9.0, juxtapleural=True, benign_features=True, features=JuxtapleuralFeatures(True, ROUND))
    assert nodule_category(n) is LungRads.CAT_4A


@pytest.mark.parametrize("total, solid, status, expected", [
    (5.9, 3.0, B, "2"), (6.0, 5.9, B, "3"), (9.0, 6.0, B, "4A"), (9.0, 7.9, B, "4A"), (9.0, 8.0, B, "4B"),
    (5.9, 2.0, N, "3"), (6.0, 3.9, N, "4A"), (6.0, 4.0, N, "4B"),
    (12.0, 3.9, G, "4A"), (12.0, 4.0, G, "4B"),
    (10.0, 5.0, G, "4B"),     # the case: solid 3 -> 5 mm in an unchanged 10 mm nodule
    (10.0, 3.5, G, "4A"),
    (13.0, 3.0, GGG, "3"),    # only the ground-glass part grew: baseline rule for its size (not 4A)
    (13.0, 6.0, GGG, "4A"), (13.0, 8.0, GGG, "4B"), (5.9, 2.0, GGG, "2"),
])
def test_part_solid(total: float, solid: float, status: NoduleStatus, expected: str) -> None:
    assert nodule_category(NoduleForRads(PS, total, solid, status=status)).value == expected


def test_part_solid_rules_are_stated() -> None:
    grown = assess(NoduleForRads(PS, 10.0, 5.0, status=G))
    assert [r.text for r in grown.rules] == ["category 4B: solid component new or growing, >= 4 mm"]
    new = assess(NoduleForRads(PS, 8.0, 3.0, status=N))
    assert [r.text for r in new.rules] == ["category 4A: solid component new, < 4 mm"]
    ggo = assess(NoduleForRads(PS, 13.0, 3.0, status=GGG))
    assert [r.text for r in ggo.rules] == ["size category: only the ground-glass part grew"]
    assert assess(NoduleForRads(PS, 9.0, 3.0)).rules == ()


@pytest.mark.parametrize("size, status, vdt, expected", [
    (30.0, B, None, "3"),
    (30.0, N, 300.0, "4X"),    # category 3 ground glass that doubles within a year
    (30.0, G, 365.0, "4X"),
    (30.0, G, 365.1, "3"),
    (30.0, G, -200.0, "3"),    # shrinking: a halving time, not a doubling
    (29.9, G, 100.0, "2"),     # category 2: 4X is for category 3 or 4 nodules only
    (35.0, ST, 100.0, "2"),
])
def test_4x_for_a_ground_glass_nodule_doubling_within_a_year(size: float, status: NoduleStatus, vdt: float | None,
                                                            expected: str) -> None:
    got = assess(NoduleForRads(GG, size, status=status, volume_doubling_days=vdt))
    assert got.category.value == expected
    rule = "category 4X: ground-glass, volume doubling time <= 1 year"
    assert [r.text for r in got.rules] == ([rule] if expected == "4X" else [])


def test_4x_needs_ground_glass() -> None:
    assert nodule_category(NoduleForRads(S, 9.0, status=G, volume_doubling_days=50.0)) is LungRads.CAT_4B
    assert nodule_category(NoduleForRads(PS, 9.0, 8.0, volume_doubling_days=50.0)) is LungRads.CAT_4B


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
    assert exam_category([*nodules, NoduleForRads(GG, 31.0, status=N, volume_doubling_days=200.0)]) is LungRads.CAT_4X


def test_inconsistent_part_solid_is_refused() -> None:
    with pytest.raises(LungRadsError, match="solid_diameter"):
        NoduleForRads(PS, 9.0)
    with pytest.raises(LungRadsError, match="larger than the nodule"):
        NoduleForRads(PS, 5.0, 6.0)
