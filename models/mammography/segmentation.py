"""Classical breast segmentation on a canonical-orientation mammogram: skin line, pectoral muscle, nipple.

Canonical orientation: chest wall at column 0, nipple towards increasing columns, MLO axilla at the
top left (:mod:`models.mammography.orientation`). Input intensities: brighter = more attenuating
(MONOCHROME2 "For Presentation" values or phantom units); only relative levels are used.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.errors import ModelError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreastSegmentation:
    breast: np.ndarray  # bool, the breast inside the skin line (pectoral muscle included)
    pectoral: np.ndarray  # bool, pectoral muscle (empty on CC or when not found)
    nipple_rc: tuple[float, float]  # pixels


def breast_mask(image: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The breast inside the skin line: above a low threshold between air and tissue, largest region, filled.

    Raises:
        ModelError: nothing that looks like a breast touches the chest wall (column 0).
    """
    smooth = ndimage.gaussian_filter(image.astype(np.float32), 0.5 / spacing_mm)
    background = float(np.percentile(smooth, 2))
    tissue = float(np.percentile(smooth, 90))
    mask = smooth > background + 0.06 * (tissue - background)
    labels, n = ndimage.label(mask)
    if n == 0:
        raise ModelError("breast segmentation: no tissue above the air level")
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    if not mask[:, 0].any():
        raise ModelError("breast segmentation: the largest region does not touch the chest wall (column 0); "
                         "is the image in canonical orientation?")
    return ndimage.binary_fill_holes(mask)


def pectoral_mask(image: np.ndarray, breast: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Pectoral muscle on a canonical MLO: the first strong falling edge from the chest wall on the upper
    rows, fitted robustly by a line then a parabola. Empty when no plausible edge is found (logged)."""
    smooth = ndimage.gaussian_filter(image.astype(np.float32), 1.0 / spacing_mm)
    rows = np.nonzero(breast[:, 0])[0]
    if rows.size == 0:
        return np.zeros_like(breast)
    top, bottom = int(rows.min()), int(rows.min() + 0.75 * (rows.max() - rows.min()))
    grad = -np.diff(smooth, axis=1) / spacing_mm  # positive where intensity falls with column
    points = []
    limit = int(90.0 / spacing_mm)
    for r in range(top, bottom, max(1, int(1.0 / spacing_mm))):
        width = int(np.nonzero(breast[r])[0].max()) if breast[r].any() else 0
        g = grad[r, : max(2, min(limit, int(0.8 * width)))]
        if g.size < 4 or g.max() <= 0:
            continue
        strong = np.nonzero(g > 0.5 * g.max())[0]
        points.append((r, float(strong[0])))
    return _fit_pectoral(np.array(points, dtype=np.float64), breast, spacing_mm)


def _fit_pectoral(points: np.ndarray, breast: np.ndarray, spacing_mm: float) -> np.ndarray:
    empty = np.zeros_like(breast)
    if len(points) < 10:
        LOGGER.debug("pectoral: too few edge points (%d)", len(points))
        return empty
    rng = np.random.default_rng(0)
    best, best_inliers = None, np.zeros(len(points), dtype=bool)
    tol = 2.0 / spacing_mm
    for _ in range(300):
        i, j = rng.choice(len(points), 2, replace=False)
        (r1, c1), (r2, c2) = points[i], points[j]
        if r1 == r2:
            continue
        slope = (c2 - c1) / (r2 - r1)
        inliers = np.abs(points[:, 1] - (c1 + slope * (points[:, 0] - r1))) < tol
        if slope < 0 and inliers.sum() > best_inliers.sum():
            best, best_inliers = (slope, c1 - slope * r1), inliers
    if best is None or best_inliers.sum() < max(10, 0.3 * len(points)):
        LOGGER.debug("pectoral: no consistent edge line")
        return empty
    coef = np.polyfit(points[best_inliers, 0], points[best_inliers, 1], 2)
    rr, cc = np.mgrid[0:breast.shape[0], 0:breast.shape[1]]
    edge = np.polyval(coef, rr[:, 0])
    top_col_mm, side_row_mm = edge[0] * spacing_mm, -best[1] / best[0] * spacing_mm
    if not (5.0 < top_col_mm < 90.0 and 20.0 < side_row_mm < 190.0):
        LOGGER.debug("pectoral: implausible edge (top %.0f mm, side %.0f mm)", top_col_mm, side_row_mm)
        return empty
    side_row = int(min(breast.shape[0], -best[1] / best[0] + 0.0))
    pec = (cc < edge[:, None]) & breast
    pec[side_row:] = False
    return ndimage.binary_opening(pec, iterations=2)


def find_nipple(breast: np.ndarray, pectoral: np.ndarray | None = None) -> tuple[float, float]:
    """The nipple as the most anterior breast point (largest column; median row of that column).

    Raises:
        ModelError: the breast mask is empty.
    """
    cols = np.nonzero(breast.any(axis=0))[0]
    if cols.size == 0:
        raise ModelError("nipple: the breast mask is empty")
    col = int(cols.max())
    rows = np.nonzero(breast[:, col])[0]
    return float(np.median(rows)), float(col)


def segment_breast(image: np.ndarray, spacing_mm: float, view: str) -> BreastSegmentation:
    """Breast, pectoral muscle (MLO-like views only) and nipple of a canonical image.

    Raises:
        ModelError: from :func:`breast_mask`.
    """
    breast = breast_mask(image, spacing_mm)
    pectoral = pectoral_mask(image, breast, spacing_mm) if view != "CC" else np.zeros_like(breast)
    return BreastSegmentation(breast, pectoral, find_nipple(breast, pectoral))
