"""Preprocessing shared by the pipeline, training and evaluation: resampling and intensity normalisation."""
from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse

from models.errors import ModelError

#: Pixel spacing (mm) at which the network and all measurements work.
WORKING_SPACING_MM = 0.25


def _area_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    """(n_out, n_in) matrix averaging input pixels over each output pixel's footprint (overlap lengths)."""
    t = n_in / n_out  # output pixel size in input pixels (> 1 when shrinking)
    rows, cols, vals = [], [], []
    for j in range(n_out):
        lo, hi = j * t, (j + 1) * t
        for i in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
            overlap = min(hi, i + 1) - max(lo, i)
            if overlap > 0:
                rows.append(j)
                cols.append(i)
                vals.append(overlap / t)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in))


def resample(image: np.ndarray, spacing_mm: float, target_mm: float = WORKING_SPACING_MM) -> np.ndarray:
    """Resample a 2D image from *spacing_mm* to *target_mm*.

    Shrinking averages the input over each output pixel's area (a box filter, exact for any factor), so a
    small bright calcification keeps its integrated signal, as in the phantoms, which render by area
    coverage; enlarging interpolates linearly.

    Raises:
        ModelError: a spacing that is not a positive number.
    """
    if not (spacing_mm > 0 and target_mm > 0):
        raise ModelError(f"resample: pixel spacing {spacing_mm!r} mm -> {target_mm!r} mm must be positive")
    factor = spacing_mm / target_mm
    if abs(factor - 1.0) < 1e-3:
        return image.astype(np.float32, copy=False)
    shape = (max(1, int(round(image.shape[0] * factor))), max(1, int(round(image.shape[1] * factor))))
    data = image.astype(np.float64)
    if factor < 1.0:
        rows = _area_weights(image.shape[0], shape[0])
        cols = _area_weights(image.shape[1], shape[1])
        return np.asarray((rows @ data) @ cols.T, dtype=np.float32)
    return ndimage.zoom(data, (shape[0] / image.shape[0], shape[1] / image.shape[1]), order=1).astype(np.float32)


def normalise(image: np.ndarray, window_centre: float, window_width: float) -> np.ndarray:
    """Map the display window [centre − width/2, centre + width/2] to [0, 1] (float32, not clipped).

    A "For Presentation" mammogram carries its VOI window; the phantoms use
    :data:`training.mammography.dicom.PHANTOM_WINDOW`. Both give fat ≈ 0.35, glandular ≈ 0.5.

    Raises:
        ModelError: a window width that is not positive.
    """
    if not window_width > 0:
        raise ModelError(f"normalise: window width {window_width!r} must be positive")
    return ((image.astype(np.float32) - (window_centre - window_width / 2.0)) / window_width).astype(np.float32)


def pad_to_multiple(image: np.ndarray, multiple: int, value: float) -> np.ndarray:
    """Pad bottom and right so that both sizes are multiples of *multiple*."""
    rows = -image.shape[0] % multiple
    cols = -image.shape[1] % multiple
    if rows == 0 and cols == 0:
        return image
    return np.pad(image, ((0, rows), (0, cols)), mode="constant", constant_values=value)
