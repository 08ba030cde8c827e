"""The lesion labeller's input: one fixed-size, multi-scale patch per candidate lesion.

Each patch has 3 channels on a (7, 24, 24) grid centred on the lesion's centroid, in mm so
that pixel spacing and slice increment do not matter:

0. fine HU: 1 mm in-plane, 3 mm between samples in z (24 x 24 x 21 mm);
1. the lesion itself (1 on its pixels, on the centre z sample of the fine grid);
2. coarse HU context: 6 mm in-plane, 8 mm in z (144 x 144 x 56 mm): where the lesion sits
   relative to the heart, aorta, spine and sternum, which decides the vessel.

Outside the volume is air (-1000 HU). Trilinear sampling; numpy/scipy only.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from models.coronary_ct.calcium import Lesion, ScanGeometry

PATCH_SHAPE = (3, 7, 24, 24)
FINE_STEP_MM = (3.0, 1.0, 1.0)
COARSE_STEP_MM = (8.0, 6.0, 6.0)


def _offsets(step_mm: tuple[float, float, float], geometry: ScanGeometry) -> np.ndarray:
    """(3, 7, 24, 24) voxel-index offsets of a patch grid around (0, 0, 0)."""
    _, nz, ny, nx = PATCH_SHAPE
    scale = (geometry.increment_mm, geometry.pixel_spacing_mm[0], geometry.pixel_spacing_mm[1])
    axes = [(np.arange(n) - (n - 1) / 2) * step / s for n, step, s in zip((nz, ny, nx), step_mm, scale)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _sample(hu: np.ndarray, centres: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    coords = centres[:, :, None, None, None] + offsets[None]  # (n, 3, z, y, x)
    flat = np.moveaxis(coords, 1, 0).reshape(3, -1)
    values = ndimage.map_coordinates(hu, flat, order=1, mode="constant", cval=-1000.0)
    return values.reshape(coords.shape[0], *offsets.shape[1:]).astype(np.float32)


def _lesion_channel(lesions: Sequence[Lesion], centres: np.ndarray, offsets: np.ndarray, cols: int) -> np.ndarray:
    _, nz, ny, nx = PATCH_SHAPE
    out = np.zeros((len(lesions), nz, ny, nx), dtype=np.float32)
    mid = nz // 2
    for n, les in enumerate(lesions):
        rows = np.rint(centres[n, 1] + offsets[1, mid]).astype(np.int64)
        cs = np.rint(centres[n, 2] + offsets[2, mid]).astype(np.int64)
        own = les.pixels[:, 0].astype(np.int64) * cols + les.pixels[:, 1]
        out[n, mid] = np.isin(rows * cols + cs, own)
    return out


def lesion_patches(hu: np.ndarray, geometry: ScanGeometry, lesions: Sequence[Lesion]) -> np.ndarray:
    """Network input (n, 3, 7, 24, 24) float32 for the *lesions* of a (slices, rows, columns) HU volume."""
    if not lesions:
        return np.zeros((0, *PATCH_SHAPE), dtype=np.float32)
    centres = np.array([(les.slice_index, *les.centroid_rc) for les in lesions], dtype=np.float64)
    fine_off = _offsets(FINE_STEP_MM, geometry)
    fine = _sample(hu, centres, fine_off)
    coarse = _sample(hu, centres, _offsets(COARSE_STEP_MM, geometry))
    mask = _lesion_channel(lesions, centres, fine_off, hu.shape[2])
    fine = np.clip(fine, -300.0, 1200.0) / 400.0
    coarse = np.clip(coarse, -1000.0, 1000.0) / 500.0
    return np.stack([fine, mask, coarse], axis=1)
