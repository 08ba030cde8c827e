"""Breast geometry and fibroglandular tissue of a mammography phantom, in canonical orientation.

Canonical orientation (see :mod:`models.mammography.orientation`): the chest wall is at column 0,
the nipple points to increasing columns; on MLO the axilla (pectoral muscle) is at the top left,
on CC the lateral side is at the top. Sizes in millimetres; images in relative attenuation units
(fat at full compressed thickness = 1.0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Detector field of the phantom (rows × cols, mm): 200 mm high, 140 mm from the chest wall.
FIELD_MM = (200.0, 140.0)


@dataclass(frozen=True)
class BreastShape:
    """Shape of one breast as seen on its CC and MLO views (mm)."""

    depth_cc_mm: float  # chest wall to nipple on CC
    half_width_cc_mm: float
    centre_cc_mm: float  # row of the nipple axis on CC
    depth_mlo_mm: float
    half_height_mlo_mm: float
    centre_mlo_mm: float
    pectoral_top_mm: float  # where the pectoral edge meets the top row (column, mm)
    pectoral_side_mm: float  # where it meets the chest wall (row, mm)
    falloff_mm: float  # width of the peripheral zone of decreasing compressed thickness
    outline: tuple[tuple[int, float, float], ...]  # outline wobble harmonics (k, amplitude, phase)


def sample_shape(rng: np.random.Generator) -> BreastShape:
    """A random but plausible breast shape."""
    depth = rng.uniform(55.0, 110.0)
    half_width = rng.uniform(55.0, 86.0)
    centre = FIELD_MM[0] / 2 + rng.uniform(-1, 1) * min(6.0, FIELD_MM[0] / 2 - half_width - 6.0)
    return BreastShape(
        depth_cc_mm=depth,
        half_width_cc_mm=half_width,
        centre_cc_mm=centre,
        depth_mlo_mm=min(depth * rng.uniform(1.0, 1.12), FIELD_MM[1] - 12.0),
        half_height_mlo_mm=min(half_width * rng.uniform(0.95, 1.1), 80.0),
        centre_mlo_mm=rng.uniform(108.0, 116.0),
        pectoral_top_mm=rng.uniform(25.0, 50.0),
        pectoral_side_mm=rng.uniform(70.0, 115.0),
        falloff_mm=rng.uniform(8.0, 14.0),
        outline=tuple((k, rng.uniform(0.0, 0.025), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)),
    )


def field_shape(spacing_mm: float) -> tuple[int, int]:
    """Image size in pixels for *spacing_mm*, rounded up to a multiple of 16 (network strides)."""
    rows, cols = (int(np.ceil(v / spacing_mm / 16.0)) * 16 for v in FIELD_MM)
    return rows, cols


def _ellipse_mask(shape: tuple[int, int], spacing_mm: float, centre_mm: float, depth_mm: float,
                  half_mm: float, outline: tuple[tuple[int, float, float], ...]) -> np.ndarray:
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) * spacing_mm
    x, y = cc / depth_mm, (rr - centre_mm) / half_mm
    phi = np.arctan2(y, x)
    wobble = 1.0 + sum(a * np.cos(k * phi + p) for k, a, p in outline)
    return np.sqrt(x**2 + y**2) / wobble < 1.0


def breast_masks(shape: BreastShape, view: str, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(breast mask, pectoral mask) of *view* ('CC' or 'MLO'); the pectoral mask is empty on CC."""
    size = field_shape(spacing_mm)
    if view == "CC":
        mask = _ellipse_mask(size, spacing_mm, shape.centre_cc_mm, shape.depth_cc_mm, shape.half_width_cc_mm,
                             shape.outline)
        return mask, np.zeros(size, dtype=bool)
    mask = _ellipse_mask(size, spacing_mm, shape.centre_mlo_mm, shape.depth_mlo_mm, shape.half_height_mlo_mm,
                         shape.outline)
    rr, cc = np.mgrid[0:size[0], 0:size[1]].astype(np.float64) * spacing_mm
    top_col = shape.pectoral_top_mm + 18.0
    frac = np.clip(rr / shape.centre_mlo_mm, 0.0, 1.0)
    axilla = (rr < shape.centre_mlo_mm) & (cc < top_col + frac * (0.75 * shape.depth_mlo_mm - top_col))
    mask = ndimage.gaussian_filter((mask | axilla).astype(np.float32), 4.0 / spacing_mm) > 0.5
    mask[:, 0] |= mask[:, 1]
    edge = shape.pectoral_top_mm * (1.0 - rr / shape.pectoral_side_mm)
    edge += 0.06 * shape.pectoral_top_mm * np.sin(np.pi * np.clip(rr / shape.pectoral_side_mm, 0, 1))
    pectoral = mask & (rr < shape.pectoral_side_mm) & (cc < edge)
    return mask, pectoral


def skin_distance_mm(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Distance (mm) from each breast pixel to the skin line; the chest wall and top edge are not skin."""
    pad = 64
    padded = np.pad(mask, ((pad, 0), (pad, 0)), mode="edge")
    dist = ndimage.distance_transform_edt(padded)[pad:, pad:]
    return dist * spacing_mm


def thickness_profile(skin_mm: np.ndarray, falloff_mm: float) -> np.ndarray:
    """Relative compressed thickness: 1 inside, decreasing towards the skin line over *falloff_mm*."""
    t = np.sqrt(np.clip(skin_mm / falloff_mm, 0.0, 1.0))
    return np.where(skin_mm > 0, 0.12 + 0.88 * t, 0.0).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], spacing_mm: float, sigma_mm: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation; large scales generated coarse and zoomed."""
    factor = max(1, int(sigma_mm / spacing_mm / 4))
    coarse = (int(np.ceil(size[0] / factor)) + 2, int(np.ceil(size[1] / factor)) + 2)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma_mm / spacing_mm / factor, mode="wrap")
    if factor > 1:
        field = ndimage.zoom(field, factor, order=1)
    field = field[: size[0], : size[1]]
    return ((field - field.mean()) / max(field.std(), 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class TissueParams:
    """Per-breast tissue appearance: target percent dense area and contrasts (relative attenuation)."""

    percent_dense: float  # 0..100, of the breast area without the pectoral muscle
    dense_contrast: float
    pectoral_contrast: float
    retromammary_mm: float  # fat band in front of the pectoral muscle (MLO)
    subcutaneous_mm: float  # fat layer under the skin without glandular tissue


def dense_tissue(rng: np.random.Generator, breast: np.ndarray, pectoral: np.ndarray, skin_mm: np.ndarray,
                 tissue: TissueParams, spacing_mm: float) -> np.ndarray:
    """Boolean fibroglandular mask covering ``percent_dense`` % of the breast area (pectoral excluded).

    A multi-scale random field, favoured behind the nipple and away from the skin, is thresholded at the
    quantile that gives the target area exactly (within the pixels where glandular tissue may lie).
    """
    size = breast.shape
    field = (0.3 * smooth_noise(rng, size, spacing_mm, 1.0) + 0.5 * smooth_noise(rng, size, spacing_mm, 3.5)
             + 0.7 * smooth_noise(rng, size, spacing_mm, 10.0))
    field -= 0.06 * np.clip(8.0 - skin_mm, 0, None)
    allowed = breast & ~pectoral & (skin_mm >= tissue.subcutaneous_mm)
    if pectoral.any():
        allowed &= ndimage.distance_transform_edt(~pectoral) * spacing_mm >= tissue.retromammary_mm
    region = breast & ~pectoral
    wanted = int(round(tissue.percent_dense / 100.0 * region.sum()))
    values = field[allowed]
    if wanted <= 0 or values.size == 0:
        return np.zeros(size, dtype=bool)
    if wanted >= values.size:
        return allowed
    threshold = np.partition(values, values.size - wanted)[values.size - wanted]
    return allowed & (field >= threshold)
