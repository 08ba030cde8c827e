"""The one shipping rule of every retrained task (issue 28, training.families.ship_verdict): a candidate that
does not meet every bar replaces the shipped version when it is better beyond noise on some family and worse
beyond noise on none; each task's evaluator uses it with its own measures."""
from __future__ import annotations

from training.families import SHIP_MEASURES, Measure, ship_verdict

MEASURES = (Measure("agreement", one_case=True), Measure("fp_per_scan", higher_is_better=False, noise=0.25))
BASE = {"a": {"agreement": 0.9, "fp_per_scan": 0.5}, "b": {"agreement": 0.5, "fp_per_scan": 2.75}}
CASES = {"a": 10, "b": 10}


def test_better_on_one_family_and_held_on_the_other_ships() -> None:
    v = ship_verdict(BASE, {"a": {"agreement": 0.8, "fp_per_scan": 0.7}, "b": {"agreement": 0.7, "fp_per_scan": 1.0}},
                     MEASURES, CASES)
    assert v.ship and v.better == {"b": ["agreement 0.5 -> 0.7", "fp_per_scan 2.75 -> 1"]} and v.worse == {}
    assert v.reasons() == ["family b: better: agreement 0.5 -> 0.7; fp_per_scan 2.75 -> 1"]


def test_noise_is_one_case_or_the_measures_own_and_exactly_one_case_is_noise() -> None:
    assert ship_verdict(BASE, {**BASE, "b": {"agreement": 0.6, "fp_per_scan": 2.75}}, MEASURES, CASES).better == {}
    assert ship_verdict(BASE, {**BASE, "b": {"agreement": 0.6, "fp_per_scan": 2.75}}, MEASURES,
                        {"a": 10, "b": 20}).ship  # one case in 20 is 0.05: 0.1 is two
    assert not ship_verdict(BASE, {**BASE, "b": {"agreement": 0.5, "fp_per_scan": 2.5}}, MEASURES, CASES).ship


def test_worse_beyond_noise_anywhere_refuses_and_better_on_restricts_the_family() -> None:
    worse_a = {"a": {"agreement": 0.7, "fp_per_scan": 0.5}, "b": {"agreement": 1.0, "fp_per_scan": 0.0}}
    v = ship_verdict(BASE, worse_a, MEASURES, CASES)
    assert not v.ship and v.worse == {"a": ["agreement 0.9 -> 0.7"]}
    assert "family a: worse beyond noise: agreement 0.9 -> 0.7" in v.reasons()
    better_on_a_only = {"a": {"agreement": 1.0, "fp_per_scan": 0.0}, "b": BASE["b"]}
    assert ship_verdict(BASE, better_on_a_only, MEASURES, CASES).ship
    assert not ship_verdict(BASE, better_on_a_only, MEASURES, CASES, better_on=("b",)).ship


def test_nan_is_no_change_and_a_family_not_evaluated_refuses() -> None:
    no_lesion = {"a": {"agreement": float("nan"), "fp_per_scan": 0.5}, "b": {"agreement": None, "fp_per_scan": 1.0}}
    assert ship_verdict(BASE, no_lesion, MEASURES, CASES).ship
    v = ship_verdict(BASE, {"b": {"agreement": 1.0, "fp_per_scan": 0.0}}, MEASURES, CASES)
    assert not v.ship and v.missing == ["a"] and v.reasons()[0] == "family a: not evaluated beside the baseline"


def test_every_task_has_its_measures() -> None:
    assert set(SHIP_MEASURES) == {"lung_nodules", "mammography", "cardiac_mri", "coronary_ct"}
    lung = {m.name: m for m in SHIP_MEASURES["lung_nodules"]}
    assert not lung["fp_per_scan"].higher_is_better and not lung["diameter_mae_mm"].higher_is_better
