"""Lung mask from HU: the air inside the body, airways removed, vessels and nodules filled in.

Computed on a coarse grid (default 2 mm) for speed and brought back to the requested grid.
Used to reject candidates outside the lungs, to tell juxtapleural nodules (attached to the chest
wall) and to give the side and cranio-caudal zone of a nodule.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid, resample

LOGGER = logging.getLogger(__name__)

AIR_HU = -400.0
MIN_LUNG_ML = 20.0


def _ball(radius_vox: tuple[int, int, int]) -> np.ndarray:
    rz, ry, rx = (max(1, r) for r in radius_vox)
    z, y, x = np.ogrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    return (z / rz) ** 2 + (y / ry) ** 2 + (x / rx) ** 2 <= 1.0


_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """``binary_fill_holes`` of every axial slice of *mask* at once: the background that no in-plane path
    (4-connected, as scipy's default) links to its slice's border is a hole."""
    background, _ = ndimage.label(~mask, structure=_IN_PLANE)
    border = np.unique(np.concatenate([background[:, 0, :].ravel(), background[:, -1, :].ravel(),
                                       background[:, :, 0].ravel(), background[:, :, -1].ravel()]))
    return ~np.isin(background, border[border > 0]) | mask


def lung_mask(hu: np.ndarray, grid: Grid, coarse_mm: float = 2.0, closing_mm: float = 6.0) -> np.ndarray:
    """Boolean lung mask on *grid* (``hu`` on *grid*, axial: array axis 0 is the slice axis).

    Air (< -400 HU) not connected to the in-plane border of the image, components of at least
    20 ml (the trachea and main bronchi are smaller or removed by the size rule against the
    largest lung), holes filled slice by slice (vessels, nodules), then a closing of *closing_mm*
    so nodules attached to the pleura belong to the lung.
    """
    coarse = grid.resampled((max(coarse_mm, grid.spacing[0]), coarse_mm, coarse_mm))
    small = resample(hu, grid, coarse, fill=-1000.0)
    air = small < AIR_HU
    labels, n = ndimage.label(air)
    border = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    sizes = ndimage.sum_labels(air, labels, index=np.arange(1, n + 1)) * coarse.voxel_volume_mm3 / 1000.0
    keep = np.zeros(n + 1, dtype=bool)
    inner = [float(sizes[k - 1]) for k in range(1, n + 1) if k not in border]
    biggest = max(inner, default=0.0)  # the largest lung: the air around the body does not count
    for k in range(1, n + 1):
        keep[k] = k not in border and sizes[k - 1] >= max(MIN_LUNG_ML, 0.15 * biggest)
    mask = fill_holes_per_slice(keep[labels])
    radius = tuple(int(round(closing_mm / s)) for s in coarse.spacing)
    pad = max(radius) + 1
    padded = np.pad(mask, pad)
    closed = ndimage.binary_closing(padded, structure=_ball(radius))[pad:-pad, pad:-pad, pad:-pad]  # type: ignore[arg-type]
    LOGGER.debug("lung mask: %d component(s) kept of %d air components", int(keep.sum()), n)
    return resample(closed.astype(np.float32), coarse, grid, fill=0.0) >= 0.5
