"""Juxtapleural flag of `locate`: chest wall next to the nodule, with a lung mask whose edge lies past the pleura;
and the Lung-RADS v2022 benign features of a juxtapleural nodule (smooth margin; lentiform, oval or triangular
shape, not round): each measured, an uncertain one reported as uncertain; and a nodule on the pleura measured
up to the pleura (the chest wall cut off by a rolling ball, grow.py), neither short of it nor into the wall."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.geometry import Grid, resample
from models.lung_nodules.grow import ball_opening, chest_wall_beside
from models.lung_nodules.lungrads import JuxtapleuralFeatures, LungRads, NoduleForRads, PleuralShape, nodule_category
from models.lung_nodules.shape import chest_wall, juxtapleural_features, locate

SPACING = (1.0, 0.7, 0.7)
SHAPE = (24, 60, 80)
EXTENT = (0.0, -100.0, 100.0)  # midline x = 0, lungs from z = -100 to 100 mm: zone "middle"


def _mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING, strict=True)], indexing="ij")
    return z, y, x


def _scene(gap_mm: float, lung_past_wall_mm: float, vessel: bool = False) -> tuple[np.ndarray, ...]:
    """Chest wall at x >= 40 mm (40 HU), lung air elsewhere; a 7 mm ball *gap_mm* from the wall;
    the lung mask reaches *lung_past_wall_mm* into the wall; optionally a 2 mm vessel from the ball
    running away from the wall to the edge of the box (outside the lung mask there: the mediastinum)."""
    z, y, x = _mm()
    centre = (12.0, 21.0, 40.0 - gap_mm - 3.5)
    ball = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 3.5 ** 2
    hu = np.where(x >= 40.0, 40.0, -860.0).astype(np.float32)
    hu[ball] = 30.0
    lung = x < 40.0 + lung_past_wall_mm
    if vessel:
        tube = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 <= 1.0) & (x <= centre[2])
        hu[tube] = 40.0
        lung &= x > 1.0  # the vessel leaves the lung at the box's edge, 25 mm from the nodule
    return ball, lung, hu


@pytest.mark.parametrize("lung_past_wall_mm", [0.0, 1.0, 2.0])
def test_a_nodule_on_the_pleura_is_juxtapleural_even_when_the_lung_mask_reaches_into_the_wall(
        lung_past_wall_mm: float) -> None:
    ball, lung, hu = _scene(0.3, lung_past_wall_mm)
    loc = locate(np.array([-20.0, 0.0, 0.0]), ball, lung, hu, EXTENT, SPACING)
    assert loc.juxtapleural and loc.in_lung and loc.side == "right" and loc.zone == "middle"
    wall = chest_wall(ball, lung, hu, SPACING)
    assert wall.any() and (hu[wall] > 0).all()


def test_a_nodule_away_from_the_pleura_is_not_juxtapleural() -> None:
    ball, lung, hu = _scene(4.0, 2.5)
    assert not locate(np.array([-20.0, 0.0, 0.0]), ball, lung, hu, EXTENT, SPACING).juxtapleural
    assert not chest_wall(ball, lung, hu, SPACING).any()


def test_a_vessel_reaching_the_mediastinum_far_away_is_not_chest_wall() -> None:
    ball, lung, hu = _scene(6.0, 0.0, vessel=True)
    assert not lung[hu > 0].all()  # the vessel's far end is outside the lung mask
    assert not locate(np.array([-20.0, 0.0, 0.0]), ball, lung, hu, EXTENT, SPACING).juxtapleural


def _ellipsoid(semi_zyx: tuple[float, float, float], spacing: tuple[float, float, float] = SPACING,
               half: bool = False) -> np.ndarray:
    """An ellipsoid (semi-axes z, y, x in mm) in a box; *half*: only x >= centre (a nodule cut by the pleura)."""
    n = [int(2 * s / sp) + 5 for s, sp in zip(semi_zyx, spacing, strict=True)]
    z, y, x = np.meshgrid(*[(np.arange(k) - (k - 1) / 2) * sp for k, sp in zip(n, spacing, strict=True)],
                          indexing="ij")
    inside = (z / semi_zyx[0]) ** 2 + (y / semi_zyx[1]) ** 2 + (x / semi_zyx[2]) ** 2 <= 1.0
    return inside & (x >= 0) if half else inside


@pytest.mark.parametrize("semi, half, smooth, shape", [
    ((4.0, 4.0, 4.0), False, True, PleuralShape.ROUND),        # a round nodule keeps its size category
    ((4.0, 4.2, 3.8), False, True, PleuralShape.ROUND),
    ((4.5, 4.5, 2.0), False, True, PleuralShape.LENTIFORM),    # a lens against the pleura
    ((4.0, 4.0, 4.0), True, True, PleuralShape.LENTIFORM),     # a half ball on the wall
    ((6.0, 3.0, 3.0), False, True, PleuralShape.OVAL),
    ((4.0, 4.0, 3.2), False, True, PleuralShape.UNCERTAIN),    # 0.8: neither round nor clearly oval
])
def test_juxtapleural_features_of_smooth_shapes(semi: tuple[float, float, float], half: bool, smooth: bool,
                                               shape: PleuralShape) -> None:
    features = juxtapleural_features(_ellipsoid(semi, half=half), SPACING)
    assert (features.smooth, features.shape) == (smooth, shape)
    assert features.benign == (shape in (PleuralShape.LENTIFORM, PleuralShape.OVAL))


def test_a_spiculated_outline_is_not_smooth_and_a_tiny_one_is_uncertain() -> None:
    star = _ellipsoid((2.5, 2.5, 2.5), (0.5, 0.5, 0.5))
    star = np.pad(star, 14)
    c = np.array(star.shape) // 2
    for axis in range(3):  # six thin spikes 6 mm long
        for sign in (-1, 1):
            idx = [slice(c[0], c[0] + 1), slice(c[1], c[1] + 1), slice(c[2], c[2] + 1)]
            lo, hi = (c[axis], c[axis] + 12 * sign) if sign > 0 else (c[axis] + 12 * sign, c[axis])
            idx[axis] = slice(lo, hi)
            star[tuple(idx)] = True
    features = juxtapleural_features(star, (0.5, 0.5, 0.5))
    assert features.smooth is False and not features.benign
    tiny = np.zeros((3, 3, 3), dtype=bool)
    tiny[1, 1, :] = True
    assert juxtapleural_features(tiny, SPACING) == JuxtapleuralFeatures(None, PleuralShape.UNCERTAIN)


# --- measuring a nodule on the pleura (grow.py): up to the pleura, not short of it, not into the wall ---------

WALL_X = 5.0  # the chest wall (40 HU) fills x >= 5 mm


def _on_wall(diameter_mm: float, spacing: tuple[float, float, float], lung_edge_mm: float
             ) -> tuple[np.ndarray, Grid, np.ndarray, Grid, np.ndarray]:
    """A round solid nodule of *diameter_mm* 0.3 mm from a flat chest wall; the network's probability only on a
    3.6 mm ball at its centre (it fades towards the wall); the lung mask's edge *lung_edge_mm* past the pleura
    (negative: inside the nodule, as a coarse closed mask can lie)."""
    shape = tuple(int(round(40.0 / s)) for s in spacing)
    grid = Grid.axial(shape, spacing, (-25.0, -20.0, 0.0))  # type: ignore[arg-type]
    mm = grid.to_mm(np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1))
    x, y, z = mm[..., 0], mm[..., 1], mm[..., 2] - 20.0
    cx = WALL_X - diameter_mm / 2 - 0.3
    hu = np.where(x >= WALL_X, 40.0, -860.0).astype(np.float32)
    hu[(x - cx) ** 2 + y ** 2 + z ** 2 <= (diameter_mm / 2) ** 2] = 30.0
    hu += np.random.default_rng(3).normal(0, 10.0, shape).astype(np.float32)
    net = grid.resampled((1.0, 1.0, 1.0))
    core = ((x - cx) ** 2 + y ** 2 + z ** 2 <= 1.8 ** 2).astype(np.float32)
    prob = np.clip(resample(core, grid, net), 0, 1)
    lung = resample((x < WALL_X + lung_edge_mm).astype(np.float32), grid, net) >= 0.5
    return hu, grid, prob, net, lung


GROW = CandidateSettings(grow_open_mm=2.5)  # as lung_nodules version 6 ships it


@pytest.mark.parametrize("diameter_mm", [5.0, 6.5, 9.0])
@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.0, 1.0, 1.0)])
@pytest.mark.parametrize("lung_edge_mm", [-1.5, 0.0, 1.5])
def test_a_round_nodule_on_the_pleura_measures_its_diameter(diameter_mm: float, spacing: tuple[float, float, float],
                                                             lung_edge_mm: float) -> None:
    """Before the wall was cut off at the pleura, these measured 4.0-4.7 mm whatever their size (the network's core:
    a body near tissue outside the lung mask did not grow)."""
    hu, grid, prob, net, lung = _on_wall(diameter_mm, spacing, lung_edge_mm)
    (nodule,) = find_nodules(prob, net, hu, grid, lung, GROW)
    assert nodule.mean_diameter_mm == pytest.approx(diameter_mm, abs=0.7)
    assert nodule.long_axis_mm <= diameter_mm + 1.0
    x = grid.to_mm(np.argwhere(nodule.mask) + [s.start for s in nodule.box])[:, 0]
    assert x.max() < WALL_X  # no voxel of the chest wall in the outline


def test_a_round_juxtapleural_nodule_keeps_its_size_category() -> None:
    """Issue 28: a round 6.5 mm nodule on the pleura is category 3; measured from the network's core (4.x mm) it
    read as 2."""
    hu, grid, prob, net, lung = _on_wall(6.5, (1.0, 0.7, 0.7), -1.5)
    (nodule,) = find_nodules(prob, net, hu, grid, lung, GROW)
    assert nodule.location.juxtapleural
    assert nodule.location.features is not None and nodule.location.features.shape is not PleuralShape.LENTIFORM
    rads = nodule_category(NoduleForRads(nodule.nodule_type, nodule.mean_diameter_mm, juxtapleural=True,
                                         features=nodule.location.features))
    assert rads is LungRads.CAT_3


def test_the_wall_ball_is_the_smallest_that_does_not_fit_the_nodule() -> None:
    spacing = (1.0, 1.0, 1.0)
    z, y, x = np.ogrid[:40, :40, :40]
    for radius, ball_mm in ((2.5, 3.0), (4.5, 5.0)):
        tissue = (x >= 30) | ((z - 20) ** 2 + (y - 20) ** 2 + (x - 29.5 + radius) ** 2 <= radius ** 2)
        core = (z - 20) ** 2 + (y - 20) ** 2 + (x - 29.5 + radius) ** 2 <= 1.0
        found = chest_wall_beside(tissue, core, spacing)
        assert found is not None and found[1] == ball_mm
        wall, _ = found
        assert wall[:, :, 30:].all()  # the wall to its face (it continues past the crop)
        assert not (wall & core).any() and not wall[:, :, :28].any()
    big = (x >= 30) | ((z - 20) ** 2 + (y - 20) ** 2 + (x - 18) ** 2 <= 12.0 ** 2)
    assert chest_wall_beside(big, np.zeros_like(big) | ((z == 20) & (y == 20) & (x == 18)), spacing) is None


def test_the_ball_opening_keeps_what_a_ball_fits_in() -> None:
    rod = np.zeros((30, 30, 30), dtype=bool)
    rod[13:16, 13:16, :] = True  # 3 mm thick
    assert not ball_opening(rod, 2.0, (1.0, 1.0, 1.0)).any()
    slab = np.zeros((30, 30, 30), dtype=bool)
    slab[:, :, 20:] = True
    assert (ball_opening(slab, 4.0, (1.0, 1.0, 1.0)) == slab).all()  # a wall cut by the array's face stays whole
