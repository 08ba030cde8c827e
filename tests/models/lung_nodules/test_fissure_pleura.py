"""Nodules on a fissure and against the pleura (issue 28): a nodule the network merges with a fissure it also
fires on is split off as its own candidate; a flattened nodule lying in a fissure's plane is attached to the
(fissural) pleura; the Lung-RADS v2022 benign rule is for smooth lentiform, oval or triangular nodules < 10 mm
only, a round juxtapleural nodule keeps its size category."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.candidates import CandidateSettings, find_nodules, split_components
from models.lung_nodules.geometry import Grid
from models.lung_nodules.lungrads import (
    JuxtapleuralFeatures,
    LungRads,
    NoduleForRads,
    NoduleType,
    PleuralShape,
    assess,
)
from models.lung_nodules.shape import on_fissure

SHAPE = (40, 60, 60)
GRID = Grid.axial(SHAPE, (1.0, 1.0, 1.0), (-30.0, -30.0, 0.0))
CENTRE = np.array([26.0, 42.0, 30.0])  # index (z, y, x) of the nodule, on the fissure plane x = 30
SEMI = np.array([3.5, 3.5, 1.5])  # lentiform: flat along the fissure (its normal is x)


def _index() -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in SHAPE], indexing="ij"), -1)


def _scene(fissure: bool = True, semi: np.ndarray = SEMI) -> dict[str, np.ndarray]:
    """Lung (-850 HU) with a fissure (-550 HU, one voxel thick, the plane x = 30) and a solid nodule on it;
    the network's probability: 0.7 over the fissure (3 voxels thick), 0.95 on a patch of it far from the
    nodule, 0.99 on the nodule."""
    idx = _index()
    nodule = (((idx - CENTRE) / semi) ** 2).sum(-1) <= 1.0
    sheet = (np.abs(idx[..., 2] - 30.0) <= 0.5) & (idx[..., 0] >= 4) & (idx[..., 0] <= 36) & (
        idx[..., 1] >= 4) & (idx[..., 1] <= 56)
    hu = np.full(SHAPE, -850.0, dtype=np.float32)
    if fissure:
        hu[sheet] = -550.0
    hu[nodule] = 30.0
    hu += np.random.default_rng(3).normal(0.0, 10.0, SHAPE).astype(np.float32)
    prob = np.zeros(SHAPE, dtype=np.float32)
    band = (np.abs(idx[..., 2] - 30.0) <= 1.5) & sheet.any(axis=2, keepdims=True)
    prob[band] = 0.7
    prob[band & (idx[..., 0] <= 9) & (idx[..., 1] <= 12)] = 0.95
    grown = (((idx - CENTRE) / (semi + 1.0)) ** 2).sum(-1) <= 1.0
    prob[grown] = np.maximum(prob[grown], 0.6)
    prob[nodule] = 0.99
    lung = np.zeros(SHAPE, dtype=bool)
    lung[1:-1, 1:-1, 1:-1] = True
    return {"hu": hu, "prob": prob, "lung": lung, "nodule": nodule}


def _labels(prob: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    labels, n = ndimage.label(prob >= 0.5, structure=np.ones((3, 3, 3), dtype=bool))
    assert n == 1  # the nodule and the fissure are one component
    return labels


def test_a_nodule_merged_with_a_fissure_is_split_off() -> None:
    s = _scene()
    labels = split_components(s["prob"], _labels(s["prob"]), GRID, CandidateSettings())
    at_nodule = labels[tuple(CENTRE.astype(int))]
    assert labels.max() == 2 and at_nodule != labels[6, 8, 30]
    own = labels == at_nodule
    assert own[s["nodule"]].all() and own.sum() < 5 * s["nodule"].sum()  # the nodule and a 2 mm fringe only (the fissure: ~4 900)


def test_a_small_or_single_cored_component_is_not_split() -> None:
    s = _scene()
    one_core = np.where(s["prob"] == 0.95, 0.7, s["prob"]).astype(np.float32)
    labels = _labels(one_core)
    assert (split_components(one_core, labels, GRID, CandidateSettings()) == labels).all()
    assert (split_components(s["prob"], _labels(s["prob"]), GRID, CandidateSettings(split_min_ml=50.0))
            == _labels(s["prob"])).all()


def _near_nodule(settings: CandidateSettings) -> list:  # type: ignore[type-arg]
    s = _scene()
    found = find_nodules(s["prob"], GRID, s["hu"], GRID, s["lung"], settings)
    centre_mm = GRID.to_mm(CENTRE[None])[0]
    return [n for n in found if np.linalg.norm(np.array(n.centre_mm) - centre_mm) <= 2.0]


def test_the_perifissural_lentiform_nodule_is_found_measured_and_on_the_fissural_pleura() -> None:
    near = _near_nodule(CandidateSettings())
    assert len(near) == 1
    n = near[0]
    assert n.long_axis_mm == pytest.approx(7.0, abs=1.0) and n.short_axis_mm == pytest.approx(3.0, abs=1.0)
    assert n.location.fissural and n.location.juxtapleural
    assert n.location.features == JuxtapleuralFeatures(True, PleuralShape.LENTIFORM) and n.location.benign_features


def test_without_the_split_the_perifissural_nodule_is_lost_in_the_fissure() -> None:
    assert _near_nodule(CandidateSettings(split_min_ml=1e6)) == []


@pytest.mark.parametrize(("fissure", "semi", "expected"), [
    (True, SEMI, True),
    (False, SEMI, False),  # the same lens in plain lung
    (True, np.array([3.5, 3.5, 3.5]), False),  # a round nodule on the fissure: no flat plane to test
])
def test_on_fissure(fissure: bool, semi: np.ndarray, expected: bool) -> None:
    s = _scene(fissure, semi)
    assert on_fissure(s["nodule"], s["hu"], (1.0, 1.0, 1.0)) is expected


def _solid(mm: float, shape: PleuralShape, smooth: bool | None = True) -> LungRads:
    return assess(NoduleForRads(NoduleType.SOLID, mm, 0.0, juxtapleural=True,
                                features=JuxtapleuralFeatures(smooth, shape))).category


@pytest.mark.parametrize(("mm", "shape", "smooth", "expected"), [
    (7.0, PleuralShape.LENTIFORM, True, LungRads.CAT_2),  # smooth lentiform perifissural < 10 mm: benign
    (9.9, PleuralShape.TRIANGULAR, True, LungRads.CAT_2),
    (9.0, PleuralShape.ROUND, True, LungRads.CAT_4A),  # round: the size category stands (8 to < 15 mm)
    (7.0, PleuralShape.ROUND, True, LungRads.CAT_3),
    (7.0, PleuralShape.LENTIFORM, False, LungRads.CAT_3),  # not smooth
    (7.0, PleuralShape.UNCERTAIN, True, LungRads.CAT_3),
    (10.0, PleuralShape.LENTIFORM, True, LungRads.CAT_4A),  # 10 mm is not < 10 mm
])
def test_benign_juxtapleural_rule_only_for_smooth_lentiform_or_triangular(
        mm: float, shape: PleuralShape, smooth: bool | None, expected: LungRads) -> None:
    assert _solid(mm, shape, smooth) is expected
