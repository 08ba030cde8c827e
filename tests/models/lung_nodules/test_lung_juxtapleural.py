"""Juxtapleural flag of `locate`: chest wall next to the nodule, with a lung mask whose edge lies past the pleura;
and the Lung-RADS v2022 benign features of a juxtapleural nodule (smooth margin; lentiform, oval or triangular
shape, not round): each measured, an uncertain one reported as uncertain."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.lungrads import JuxtapleuralFeatures, PleuralShape
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
