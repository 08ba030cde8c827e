"""Juxtapleural flag of `locate`: chest wall next to the nodule, with a lung mask whose edge lies past the pleura."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.shape import chest_wall, locate

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
