"""A solid nodule the network covers only in part grows to its HU body (``CandidateSettings.grow_open_mm``), on the
pleura too, less the chest wall."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.geometry import Grid, resample
from models.lung_nodules.lungrads import NoduleType

SHAPE = (40, 90, 90)
GROW = CandidateSettings(grow_open_mm=2.5)


def _scene(nodule_hu: float, wall_gap_mm: float | None = None, vessel_mm: float = 1.5
           ) -> tuple[np.ndarray, Grid, np.ndarray, Grid, np.ndarray]:
    """A 9 mm nodule (radius 4.5 mm) on a vessel of radius *vessel_mm* running along x, the network's
    probability on a 4 mm ball at its centre only; with *wall_gap_mm* a chest wall (outside the lung mask)
    that far from the nodule's edge on the patient's left."""
    grid = Grid.axial(SHAPE, (1.0, 0.7, 0.7), (-31.5, -31.5, 0.0))
    mm = grid.to_mm(np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1))
    x, y, z = mm[..., 0], mm[..., 1], mm[..., 2] - 20.0
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    hu = np.full(SHAPE, -860.0, dtype=np.float32)
    hu[y ** 2 + z ** 2 <= vessel_mm ** 2] = 40.0
    hu[r <= 4.5] = nodule_hu
    inside = np.ones(SHAPE, dtype=bool)
    if wall_gap_mm is not None:
        inside = x < 4.5 + wall_gap_mm
        hu[~inside] = 40.0
    hu += np.random.default_rng(2).normal(0, 10.0, SHAPE).astype(np.float32)
    net = grid.resampled((1.0, 1.0, 1.0))
    prob = np.clip(resample((r <= 2.0).astype(np.float32), grid, net), 0, 1)
    lung = resample(inside.astype(np.float32), grid, net) >= 0.5
    return hu, grid, prob, net, lung


def _one(settings: CandidateSettings, nodule_hu: float = 30.0, wall_gap_mm: float | None = None,  # type: ignore[no-untyped-def]
         vessel_mm: float = 1.5):
    hu, grid, prob, net, lung = _scene(nodule_hu, wall_gap_mm, vessel_mm)
    (nodule,) = find_nodules(prob, net, hu, grid, lung, settings)
    return nodule


def test_a_solid_nodule_on_a_vessel_grows_to_its_diameter_and_not_along_the_vessel() -> None:
    small = _one(CandidateSettings())
    grown = _one(GROW)
    assert small.mean_diameter_mm < 7.0  # the network's core and the 2-voxel margin around it
    assert grown.mean_diameter_mm == pytest.approx(9.0, abs=0.6)
    assert grown.long_axis_mm == pytest.approx(9.0, abs=0.8)  # the vessel is not part of the outline
    assert grown.nodule_type is NoduleType.SOLID
    assert grown.volume_mm3 == pytest.approx(4 / 3 * np.pi * 4.5 ** 3, rel=0.2)


@pytest.mark.parametrize("wall_gap_mm", [0.0, 0.7])
def test_a_nodule_touching_the_chest_wall_grows_to_its_diameter_and_not_into_the_wall(wall_gap_mm: float) -> None:
    """The chest wall is cut off at the pleura (grow.chest_wall_beside) and the rest grows; before, a body that
    came near tissue outside the lung mask did not grow at all (5.8 mm here: the network's core)."""
    assert _one(CandidateSettings(), wall_gap_mm=wall_gap_mm).mean_diameter_mm < 7.0
    grown = _one(GROW, wall_gap_mm=wall_gap_mm)
    assert grown.mean_diameter_mm == pytest.approx(9.0, abs=0.8)
    assert grown.long_axis_mm < 9.0 + 1.0  # neither the wall nor the vessel's stump
    assert grown.location.juxtapleural
    assert _one(GROW, wall_gap_mm=6.0).mean_diameter_mm == pytest.approx(9.0, abs=0.6)  # a wall further away


def test_a_nodule_on_a_vessel_thicker_than_the_ball_does_not_grow() -> None:
    assert _one(GROW, vessel_mm=3.0).mean_diameter_mm == _one(CandidateSettings(), vessel_mm=3.0).mean_diameter_mm


def test_ground_glass_does_not_grow() -> None:
    assert _one(GROW, nodule_hu=-620.0).mean_diameter_mm == _one(CandidateSettings(), nodule_hu=-620.0).mean_diameter_mm


def test_growth_is_off_by_default() -> None:
    assert CandidateSettings().grow_open_mm == 0.0
