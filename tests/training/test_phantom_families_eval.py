"""Cross-family evaluation of the SHIPPED versions (triton_repo/) on a phantom of each family (issue 28).

The report must have one row per family with every quality bar of the issue (value, bar, met); the bars
themselves are not asserted (family B is what the next versions are trained to hold on): the figures are
printed, and the full figures of a longer run are in the report of the change. The model card renders the
rows as the "train family -> evaluation family" table.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from training.families import BARS, MODELS, card_rows, evaluate_families, table_lines, trained_families
from training.publish import render_card

REPO = Path(__file__).resolve().parents[2] / "triton_repo"


def _check(rows: list[dict], task: str) -> None:
    print("\n".join(table_lines(rows)))
    assert [r["family"] for r in rows] == ["a", "b"]
    for row in rows:
        trained = trained_families(REPO, MODELS[task], row["version"])  # a, or a+b for cardiac v2 (its card)
        assert row["task"] == task and row["train_family"] == trained and row["version"] >= 1
        assert set(row["bars"]) == set(BARS[task])
        assert all(set(b) == {"value", "bar", "met"} for b in row["bars"].values())


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cardiac_mri", "mammography", "lung_nodules"])
def test_shipped_version_reports_each_family(task: str) -> None:
    rows = evaluate_families(task, REPO, None, "both", 1)
    _check(rows, task)
    card = render_card({"model": task, "version": rows[0]["version"], "cross_family": card_rows(rows)})
    section = card.split("## Train family -> evaluation family", 1)[1]
    trained = rows[0]["train_family"]
    assert f"| {trained} | a | 1 |" in section and f"| {trained} | b | 1 |" in section
    assert all(name in section for name in BARS[task])


@pytest.mark.slow
def test_aiws_evaluate_family_both_writes_the_rows(tmp_path: Path) -> None:
    from aiws.cli import main

    code = main(["evaluate", "--version", "0", "--task", "cardiac_mri", "--family", "both", "--phantoms", "1",
                 "--repository", str(REPO), "--out", str(tmp_path)])
    assert code == 0
    rows = json.loads((tmp_path / "cross_family.json").read_text())
    _check(rows, "cardiac_mri")
    assert main(["evaluate", "--task", "coronary_ct", "--family", "b", "--repository", str(REPO)]) != 0


@pytest.mark.slow
def test_aiws_evaluate_run_family_b_uses_the_runs_candidate(tmp_path: Path) -> None:
    from aiws.cli import main

    run = tmp_path / "run"
    shutil.copytree(REPO / "cardiac_cine_segmenter", run / "export" / "cardiac_cine_segmenter")
    assert main(["evaluate", str(run), "--family", "b", "--phantoms", "1", "--out", str(tmp_path / "report")]) == 0
    rows = json.loads((tmp_path / "report" / "cross_family.json").read_text())
    assert [r["family"] for r in rows] == ["b"] and rows[0]["task"] == "cardiac_mri"
