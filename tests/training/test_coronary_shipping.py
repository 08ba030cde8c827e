"""When a coronary labeller run is shipped (issue 28): the cross-family bars met, or better than the shipped
version on a family and no worse on any; and the card's train -> evaluation family table."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.coronary_ct.commands import card_rows
from training.coronary_ct.evaluate import IMPROVEMENT_TOLERANCE, headline, improves_on
from training.publish import cross_family_lines

REPO = Path(__file__).resolve().parents[2] / "triton_repo" / "coronary_calcium_labeller"


def _report(within: float, recall: tuple[float, float, float, float], cac: float, conf: float,
            trained_on: str = "A+B") -> dict[str, Any]:
    return {"trained_on": trained_on, "phantoms": 30, "cross_family_bars": {
        "vessel_agatston_within_10pct": {"fraction": within, "meets_90": within >= 0.9},
        "lesion_recall_per_vessel": {v: {"fraction": r, "meets_95": r >= 0.95}
                                     for v, r in zip(("LM", "LAD", "LCx", "RCA"), recall)},
        "cac_drs_agreement": {"fraction": cac, "meets_90": cac >= 0.9},
        "confounder_counted_phantoms": {"fraction": conf, "meets_below_2pct": conf < 0.02}}}


PERFECT = _report(1.0, (1.0, 1.0, 1.0, 1.0), 1.0, 0.0)
V1_ON_B = _report(0.124, (0.0, 0.641, 0.229, 0.542), 0.167, 0.933, "A")


def test_headline_takes_the_lowest_vessel_recall_and_inverts_the_confounder_rate() -> None:
    assert headline(V1_ON_B) == {"vessel_agatston_within_10pct": 0.124, "lowest_vessel_recall": 0.0,
                                 "cac_drs_agreement": 0.167, "no_confounder_counted": 1.0 - 0.933}


def test_better_on_the_unseen_family_and_held_on_the_other_improves() -> None:
    ours = {"A": PERFECT, "B": _report(0.63, (0.92, 0.936, 0.844, 0.875), 0.933, 0.067)}
    assert improves_on(ours, {"A": PERFECT, "B": V1_ON_B})


def test_losing_more_than_the_tolerance_on_one_family_does_not_improve() -> None:
    worse_a = _report(1.0, (1.0, 1.0, 1.0 - 2 * IMPROVEMENT_TOLERANCE, 1.0), 1.0, 0.0)
    assert not improves_on({"A": worse_a, "B": PERFECT}, {"A": PERFECT, "B": V1_ON_B})
    within = _report(1.0, (1.0, 1.0, 1.0 - IMPROVEMENT_TOLERANCE / 2, 1.0), 1.0, 0.0)
    assert improves_on({"A": within, "B": PERFECT}, {"A": PERFECT, "B": V1_ON_B})


def test_the_same_figures_or_a_missing_family_do_not_improve() -> None:
    assert not improves_on({"A": PERFECT, "B": V1_ON_B}, {"A": PERFECT, "B": V1_ON_B})
    assert not improves_on({"A": PERFECT, "B": PERFECT}, {"A": PERFECT})


def test_card_rows_give_every_bar_with_its_verdict() -> None:
    rows = card_rows({"families": {"A": PERFECT, "B": V1_ON_B}})
    assert [(r["train_family"], r["evaluation_family"]) for r in rows] == [("A+B", "A"), ("A", "B")]
    assert all(b["met"] for b in rows[0]["bars"].values())
    assert rows[1]["bars"]["LM lesion recall"] == {"value": 0.0, "bar": ">= 0.95", "met": False}
    assert rows[1]["bars"]["phantoms with confounder calcium counted"]["met"] is False
    lines = cross_family_lines(rows)
    assert lines[2].startswith("| A+B | A | 30 |") and "not met" in lines[3]


def test_every_shipped_version_after_the_first_carries_its_cross_family_table() -> None:
    for folder in sorted(p for p in REPO.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 1):
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        assert {r["evaluation_family"] for r in card["cross_family"]} == {"A", "B"}, folder.name
        assert card["trained_on"]["families"] == ["A", "B"]
        assert "Train family -> evaluation family" in (folder / "model_card.md").read_text(encoding="utf-8")
