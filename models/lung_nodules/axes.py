"""Long and short axis of a nodule on one axial image, sub-pixel.

The long axis is the largest distance between two points of the outline (maximum Feret
diameter); the short axis is the largest extent perpendicular to it (the width across the long
axis), as radiologists measure with calipers. The outline is the 0.5 iso-line of a continuous
field (probability or normalised HU) refined by bilinear upsampling, so the result does not
jump by a whole pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

UPSAMPLE = 4


@dataclass(frozen=True)
class Axes2D:
    """Axes in mm with end points in (row, column) mm coordinates of the slice."""

    long_mm: float
    short_mm: float
    long_ends: tuple[tuple[float, float], tuple[float, float]]
    short_ends: tuple[tuple[float, float], tuple[float, float]]


ZERO = Axes2D(0.0, 0.0, ((0.0, 0.0), (0.0, 0.0)), ((0.0, 0.0), (0.0, 0.0)))


def _fine_mask(field: np.ndarray, level: float, factor: int) -> np.ndarray:
    padded = np.pad(field.astype(np.float32), 1, mode="edge")
    fine = ndimage.zoom(padded, factor, order=1, grid_mode=True, mode="nearest")
    crop = factor  # drop the padding
    return fine[crop:-crop, crop:-crop] >= level


def _corner_points(mask: np.ndarray, step: tuple[float, float]) -> np.ndarray:
    """(row, col) mm of the four corners of every boundary pixel of *mask*."""
    edge = mask & ~ndimage.binary_erosion(mask)
    rc = np.argwhere(edge).astype(np.float64)
    if len(rc) == 0:
        return np.zeros((0, 2))
    corners = np.concatenate([rc + d for d in ((-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5))])
    return np.unique(corners * np.array(step), axis=0)


def axes_of(field: np.ndarray, pixel_mm: tuple[float, float], level: float = 0.5,
            factor: int = UPSAMPLE) -> Axes2D:
    """Long/short axis (mm) of the region ``field >= level`` on one slice; ZERO when empty.

    *field* is 2D (row, column); *pixel_mm* its (row, column) spacing. Only the largest connected
    region counts.
    """
    mask = _fine_mask(field, level, factor)
    labels, n = ndimage.label(mask)
    if n == 0:
        return ZERO
    if n > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        mask = labels == int(np.argmax(sizes)) + 1
    step = (pixel_mm[0] / factor, pixel_mm[1] / factor)
    points = _corner_points(mask, step)
    offset = np.array(step) * (factor - 1) / 2.0  # fine pixel centres vs coarse pixel centres
    points = points - offset
    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        hull = points
    if len(hull) < 2:
        return ZERO
    diff = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diff ** 2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    long_mm = float(dist[i, j])
    direction = (hull[j] - hull[i]) / max(long_mm, 1e-9)
    perp = np.array([-direction[1], direction[0]])
    proj = hull @ perp
    short_mm = float(proj.max() - proj.min())
    mid = (hull[i] + hull[j]) / 2.0
    centre_perp = (proj.max() + proj.min()) / 2.0
    base = mid + perp * (centre_perp - mid @ perp)
    short_ends = (tuple(base - perp * short_mm / 2), tuple(base + perp * short_mm / 2))
    return Axes2D(long_mm, min(short_mm, long_mm), (tuple(hull[i]), tuple(hull[j])), short_ends)  # type: ignore[arg-type]
