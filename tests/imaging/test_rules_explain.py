"""MatchRules.explain: each condition's outcome and why, always agreeing with matches()."""
from __future__ import annotations

import itertools

import pytest
from pydicom.dataset import Dataset

from imaging.rules import ConditionResult, MatchRules


def _hdr(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


RULES = MatchRules.parse({"Modality": "^CT$", "SliceThickness": [0, 2.5], "ImageType": r"ORIGINAL\\PRIMARY",
                          "Orientation": "AXIAL"})
AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]


def _by_keyword(results: tuple[ConditionResult, ...]) -> dict[str, ConditionResult]:
    return {r.keyword: r for r in results}


def test_every_condition_matched_says_so_with_the_value_compared() -> None:
    header = _hdr(Modality="CT", SliceThickness="1.25", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
                  ImageOrientationPatient=AXIAL)
    results = _by_keyword(RULES.explain(header))
    assert [r.keyword for r in RULES.explain(header)] == ["Modality", "SliceThickness", "ImageType", "Orientation"]
    assert all(r.matched for r in results.values())
    assert results["Modality"] == ConditionResult("Modality", "^CT$", True, "matches", "CT")
    assert results["SliceThickness"].reason == "within range" and results["SliceThickness"].value == "1.25"
    assert results["SliceThickness"].rule == "[0, 2.5]"
    assert results["ImageType"].value == "ORIGINAL\\PRIMARY\\AXIAL"  # multi-valued: joined as the regex sees it
    assert results["Orientation"].value == "AXIAL"  # derived from the orientation vectors


def test_each_failure_is_named_and_later_conditions_are_still_explained() -> None:
    header = _hdr(Modality="MR", SliceThickness="3.0", ImageOrientationPatient=CORONAL)
    results = _by_keyword(RULES.explain(header))
    assert (results["Modality"].matched, results["Modality"].reason, results["Modality"].value) == (
        False, "does not match", "MR")
    assert (results["SliceThickness"].reason, results["SliceThickness"].value) == ("out of range", "3.0")
    assert (results["ImageType"].reason, results["ImageType"].value) == ("absent", None)
    assert (results["Orientation"].reason, results["Orientation"].value) == ("does not match", "CORONAL")


def test_a_non_numeric_value_on_a_range_is_not_a_number() -> None:
    rules = MatchRules.parse({"SliceThickness": [0, 2.5]})
    header = {"SliceThickness": "thin"}  # a mapping, as matches() accepts too
    (result,) = rules.explain(header)
    assert (result.matched, result.reason) == (False, "not a number")
    assert rules.matches(header) is False


def test_no_condition_explains_nothing_and_matches() -> None:
    assert MatchRules.parse({}).explain(_hdr(Modality="CT")) == ()
    assert MatchRules.parse({}).matches(_hdr(Modality="CT")) is True


MODALITIES = [None, "CT", "MR", "CTX"]
THICKNESS = [None, "0", "2.5", "2.51", "x", ["1", "2"], ["1", "9"]]
ORIENTATION = [None, AXIAL, CORONAL]


@pytest.mark.parametrize("modality,thickness,orientation",
                         list(itertools.product(MODALITIES, THICKNESS, ORIENTATION)))
def test_explain_agrees_with_matches(modality: str | None, thickness: object, orientation: list[int] | None) -> None:
    fields = {"Modality": modality, "SliceThickness": thickness, "ImageOrientationPatient": orientation}
    header = {k: v for k, v in fields.items() if v is not None}  # a mapping: a Dataset refuses "x" as DS
    results = RULES.explain(header)
    assert all(r.matched for r in results) == RULES.matches(header)
    assert len(results) == 4


def test_matches_outcomes_unchanged() -> None:
    """The cases matches() had before explain() existed."""
    rules = MatchRules.parse({"Modality": "CT", "SliceThickness": [0, 2.5]})
    assert rules.matches(_hdr(Modality="CT", SliceThickness="2.5"))
    assert not rules.matches(_hdr(Modality="CT", SliceThickness="2.6"))
    assert not rules.matches(_hdr(Modality="CT"))
    assert rules.matches(_hdr(Modality="PET-CT", SliceThickness=["1", "2"]))  # re.search, every value in range
    assert not rules.matches(_hdr(Modality="CT", SliceThickness=["1", "3"]))
