"""Cross-family evaluation of the calcium labeller (issue 28): the per-stage accounting (candidates, labels, vessel)
on a family-B phantom, the cross-family bars with their intervals, and the training augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.coronary_ct.calcium import CORONARIES, Vessel
from models.coronary_ct.patches import PATCH_SHAPE
from training.coronary_ct.dataset import phantom_lesions
from training.coronary_ct.evaluate import (
    CoronaryMetrics,
    PhantomResult,
    branch_counts,
    branch_table,
    onnx_predict,
    stage_rows,
    stage_table,
    vessel_agatston_within_bar,
    wilson,
)
from training.coronary_ct.phantom_b import coronary_anatomy_b, make_phantom_b
from training.coronary_ct.train import augmentation

REPO = Path(__file__).resolve().parents[3] / "triton_repo"


def _result(seed: int, truth: tuple[float, ...], ours: tuple[float, ...], right: tuple[int, ...],
            confounders: int = 0, cac: tuple[str, str] = ("A1/N1", "A1/N1")) -> PhantomResult:
    return PhantomResult(seed, sum(truth), sum(ours), cac[0], cac[1], 8, sum(right), 0, confounders, "B", truth, ours,
                         (2, 2, 2, 2), right, confounders)


def test_wilson_interval_and_the_per_vessel_bar() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(19, 20)
    assert lo == pytest.approx(0.7639, abs=1e-3) and hi == pytest.approx(0.9911, abs=1e-3)
    assert vessel_agatston_within_bar(11.9, 10.0) and not vessel_agatston_within_bar(12.1, 10.0)  # 2 points
    assert vessel_agatston_within_bar(109.0, 100.0) and not vessel_agatston_within_bar(111.0, 100.0)  # 10 %


def test_cross_family_bars_count_vessels_recall_and_confounder_phantoms() -> None:
    good = _result(1, (10.0, 50.0, 0.0, 30.0), (10.0, 52.0, 0.0, 30.0), (2, 2, 2, 2))
    lost_lcx = _result(2, (0.0, 20.0, 40.0, 0.0), (0.0, 20.0, 0.0, 0.0), (2, 2, 0, 2), cac=("A1/N2", "A1/N1"))
    valve = _result(3, (0.0, 20.0, 0.0, 0.0), (0.0, 45.0, 0.0, 0.0), (2, 2, 2, 2), confounders=1)
    bars = CoronaryMetrics((good, lost_lcx, valve)).cross_family()
    vessel = bars["vessel_agatston_within_10pct"]
    assert vessel["vessel_cases"] == 6 and vessel["fraction"] == pytest.approx(4 / 6, abs=1e-4)  # type: ignore[index]
    recall = bars["lesion_recall_per_vessel"]
    assert recall["LCx"]["fraction"] == pytest.approx(4 / 6, abs=1e-4) and not recall["LCx"]["meets_95"]  # type: ignore[index]
    assert recall["LAD"]["meets_95"]  # type: ignore[index]
    assert bars["cac_drs_agreement"]["fraction"] == pytest.approx(2 / 3, abs=1e-4)  # type: ignore[index]
    assert bars["confounder_counted_phantoms"]["fraction"] == pytest.approx(1 / 3, abs=1e-4)  # type: ignore[index]
    assert bars["passes_cross_family_bars"] is False
    clean = CoronaryMetrics((good,) * 3).cross_family()
    assert clean["passes_cross_family_bars"] is True


def test_augmentation_keeps_the_patch_grid_and_a_binary_lesion_mask() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(16, *PATCH_SHAPE)).astype(np.float32))
    x[:, 1] = 0.0
    x[:, 1, 3, 10:14, 10:14] = 1.0
    out = augmentation(1.0, seed=0)(x)
    assert out.shape == x.shape
    assert set(torch.unique(out[:, 1]).tolist()) <= {0.0, 1.0} and (out[:, 1].sum(dim=(1, 2, 3)) > 0).all()
    assert not torch.allclose(out[:, 0], x[:, 0])
    assert torch.allclose(augmentation(0.0, seed=0)(x), x, atol=1e-5)  # p = 0: the identity warp


@pytest.fixture(scope="module")
def shipped():  # type: ignore[no-untyped-def]
    predict, close = onnx_predict(REPO)
    yield predict
    close()


def test_family_b_stages_every_calcification_is_a_candidate(shipped) -> None:  # type: ignore[no-untyped-def]
    """Per stage on a left-dominant family-B phantom with a 4 mm left main beside the aortic root and valve, root,
    annulus, aortic-wall and cartilage calcium: every coronary calcification is a candidate (the losses are not at
    the candidate stage), and each vessel's candidates are accounted for as labelled right, not coronary or another
    vessel. (Labelling >= 95 % right per vessel is the strict xfail in test_coronary_confounders.py.)"""
    rows, confounders, bone = stage_rows(make_phantom_b(1), shipped)
    assert [r.vessel for r in rows] == [v.value for v in CORONARIES]
    for r in rows:
        assert r.calcifications > 0 and r.calcifications_found == r.calcifications, r
        assert r.candidates >= r.calcifications and r.right + r.not_coronary + r.other_vessel == r.candidates, r
    assert bone == 0 and confounders >= 0


def test_stage_table_prints_one_line_per_vessel(shipped) -> None:  # type: ignore[no-untyped-def]
    text = stage_table("B", [3], shipped)
    assert text.count("\n") == 5 and "LCx" in text and "confounder" in text


@pytest.mark.parametrize("seed", [10000, 10001, 10005, 10012])
def test_family_b_branches_carry_their_vessels_calcium(seed: int) -> None:
    """Every coronary calcification of a family-B phantom lies on a branch of its vessel (the ramus on the LAD's
    side, the posterior descending branch on the dominant vessel's), so the branch of a lesion says where it is."""
    phantom, anatomy = make_phantom_b(seed), coronary_anatomy_b(seed)
    dominant = "LCx" if anatomy.variant.dominance == "left" else "RCA"
    vessel_of = {"LM": "LM", "LAD": "LAD", "ramus": "LAD", "LCx": "LCx", "RCA": "RCA", "PDA": dominant}
    assert ("LM" in anatomy.branches) == (anatomy.variant.left_main_mm > 0)
    assert ("ramus" in anatomy.branches) == anatomy.variant.ramus
    for c in (c for c in phantom.calcifications if c.kind in ("LM", "LAD", "LCx", "RCA")):
        branch, mm = anatomy.branch_of(np.asarray(c.centre_mm))
        assert mm < 1.0 and vessel_of[branch] == c.kind, (c.kind, branch, mm)


def test_branch_table_accounts_for_every_coronary_lesion(shipped) -> None:  # type: ignore[no-untyped-def]
    counts = branch_counts([10000, 10001], shipped)
    coronary = sum(1 for s in (10000, 10001) for t in phantom_lesions(make_phantom_b(s))[1] if t.vessel in CORONARIES)
    assert sum(sum(row.values()) for row in counts.values()) == coronary
    assert {("PDA", "left"), ("PDA", "right")} <= set(counts)  # 10001 is left-dominant, 10000 right
    text = branch_table([10001], shipped)
    assert "PDA    left" in text and "right" in text.splitlines()[0]


def test_dominance_probe_collects_posterior_descending_lesions_and_can_fit_them() -> None:
    """The probe's parts: its lesions are the posterior descending branch's (LCx in left-dominant 10001, RCA in
    right-dominant 10000), and its fine-tuning fits a handful of them, so an unseen accuracy that stays at chance on
    the full run says the patch lacks the dominance, not that the probe cannot learn."""
    from models.coronary_ct.network import build_network
    from training.coronary_ct.dominance_probe import posterior_descending_lesions, probe

    left, right = posterior_descending_lesions([10001], workers=1), posterior_descending_lesions([10000], workers=1)
    assert len(left.y) and set(left.y) == {Vessel.LCX.index} and len(right.y) and set(right.y) == {Vessel.RCA.index}
    train = type(left)(np.concatenate([left.x, right.x]), np.concatenate([left.y, right.y]))
    torch.manual_seed(0)
    rows = probe(build_network((8, 16, 32), 0.0), train, right, epochs=40, learning_rate=3e-3)
    assert len(rows) == 41 and rows[-1]["train"] == 1.0
