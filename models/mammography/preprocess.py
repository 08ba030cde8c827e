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


#: Where the training family (A) puts air and fatty tissue after :func:`normalise` with its display
#: window: air 0.02 and fat 1.0 relative attenuation, window (1.3, 2.0). Fat is the 5th percentile of the
#: smoothed breast more than 15 mm inside the skin line (0.99 on family A, see :func:`breast_levels`).
REFERENCE_AIR = -0.14
REFERENCE_FAT = 0.345
#: Depths inside the skin line (mm) tried in turn for the fat level; the first with enough pixels is used.
FAT_DEPTHS_MM = (15.0, 10.0, 5.0, 0.0)
#: The shell between these depths inside the skin line (mm), where the compressed breast is not yet at full
#: thickness and subcutaneous fat lies even in an extremely dense breast (:func:`breast_levels`).
SHELL_DEPTHS_MM = (6.0, 7.0)
#: A shell darker than this fraction of the interior's level (above air) means the interior has no fat: its
#: 5th percentile is glandular tissue. Set from family A alone: on 200 views of breasts below 70 % dense
#: (calibration seeds 20000-20063) the shell's 5th percentile reads 0.68-0.91 of the fat level, median 0.75.
#: A dense interior divides that by 1 + the glandular contrast (1.25-1.4): family B's calibration seeds
#: (50000-50063) confirm it, 0.70-0.79 on its 190 such views and 0.49-0.65 where its extremely dense breasts
#: were read as fatty.
SHELL_RATIO_MIN = 0.64
#: The shell's median fraction of the fat level on family A: the fat level is the shell's 5th percentile over it.
SHELL_RAMP = 0.75


def breast_levels(x: np.ndarray, breast: np.ndarray, pectoral: np.ndarray, spacing_mm: float) -> tuple[float, float]:
    """(air, fat) levels of a normalised image, measured on the image itself: air = median outside the breast,
    fat = 5th percentile of the image smoothed over 1 mm, inside the breast (pectoral muscle excluded) more
    than 15 mm from the skin line (less on a small breast).

    An extremely dense breast has no fat that deep: the 5th percentile there is glandular tissue, and the
    breast read against it came out almost entirely fatty (independent phantoms, family B: every breast above
    75 % dense read low, d as a). When the shell :data:`SHELL_DEPTHS_MM` inside the skin line, where
    subcutaneous fat lies, is darker than :data:`SHELL_RATIO_MIN` of that level, the fat level is taken from
    the shell instead (its 5th percentile over :data:`SHELL_RAMP`, the shell's usual fraction of the fat
    level). The error this risks is a fat level set too low, which reads a breast denser, not fattier.

    Raises:
        ModelError: an empty breast or nothing outside it, or fat not above air.
    """
    tissue = breast & ~pectoral
    if not tissue.any() or breast.all():
        raise ModelError("breast levels: the breast mask is empty or fills the image")
    air = float(np.median(x[~breast]))
    depth_mm = ndimage.distance_transform_edt(np.pad(breast, ((0, 0), (1, 0)), mode="edge"))[:, 1:] * spacing_mm
    smooth = ndimage.gaussian_filter(x.astype(np.float32), 1.0 / spacing_mm)
    min_pixels = int(100.0 / spacing_mm**2)  # 1 cm²
    fat = float("nan")
    for d in FAT_DEPTHS_MM:
        region = tissue & (depth_mm > d)
        if region.sum() >= min_pixels or d == FAT_DEPTHS_MM[-1]:
            fat = float(np.percentile(smooth[region], 5))
            break
    if not fat > air:  # also NaN
        raise ModelError(f"breast levels: fatty tissue {fat:.3f} is not brighter than air {air:.3f} "
                         f"(inverted or saturated display?)")
    shell = tissue & (depth_mm > SHELL_DEPTHS_MM[0]) & (depth_mm <= SHELL_DEPTHS_MM[1])
    if shell.sum() >= min_pixels // 4:
        shell_level = float(np.percentile(smooth[shell], 5))
        if air < shell_level < air + SHELL_RATIO_MIN * (fat - air):
            fat = air + (shell_level - air) / SHELL_RAMP
    return air, fat


def relative_to_breast(x: np.ndarray, air: float, fat: float) -> np.ndarray:
    """*x* mapped linearly so that its own air and fat levels (:func:`breast_levels`) land where the
    training family puts them (:data:`REFERENCE_AIR`, :data:`REFERENCE_FAT`): what the network and the
    density estimate see no longer depends on the display window, the vendor's pixel scale or the breast's
    compressed thickness, only on contrast relative to the breast's own fat."""
    scale = (REFERENCE_FAT - REFERENCE_AIR) / (fat - air)
    return (REFERENCE_AIR + (x.astype(np.float32) - air) * scale).astype(np.float32)
