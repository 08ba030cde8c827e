"""Lung mask: the lungs are found however much air surrounds the body; holes are filled slice by slice."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid
from models.lung_nodules.lungmask import fill_holes_per_slice, lung_mask


def _chest(fov_mm: int) -> tuple[np.ndarray, Grid, np.ndarray]:
    """60 mm of a small chest (body 120 x 90 mm, two 40 x 50 mm lungs of ~90 ml) centred in a square field of view."""
    shape = (60, fov_mm, fov_mm)
    _, y, x = np.indices(shape, dtype=np.float32)
    c = fov_mm / 2.0
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((x - c) / 60.0) ** 2 + ((y - c) / 45.0) ** 2 <= 1.0
    lungs = [((x - c - s * 28.0) / 20.0) ** 2 + ((y - c) / 25.0) ** 2 <= 1.0 for s in (-1, 1)]
    hu[body] = 40.0
    truth = np.zeros(shape, dtype=bool)
    for lung in lungs:
        truth |= lung
    hu[truth] = -860.0
    return hu, Grid.axial(shape, (1.0, 1.0, 1.0)), truth


def test_lungs_found_in_a_tight_and_in_a_wide_field_of_view() -> None:
    for fov in (140, 400):  # 400 mm: the air around the body is ~20 times the lungs
        hu, grid, truth = _chest(fov)
        mask = lung_mask(hu, grid)
        overlap = (mask & truth).sum() / truth.sum()
        assert overlap > 0.95 and (mask & ~truth).sum() < 0.1 * truth.sum(), fov


def test_holes_are_filled_slice_by_slice_as_scipy_does() -> None:
    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((6, 40, 50)) > 0.45)
    mask[2, 10:20, 10:20] = True
    mask[2, 13:17, 13:17] = False  # a hole in slice 2, open to slices 1 and 3: still a hole in 2D
    want = np.stack([ndimage.binary_fill_holes(m) for m in mask])
    np.testing.assert_array_equal(fill_holes_per_slice(mask), want)
    assert fill_holes_per_slice(mask)[2, 15, 15]
