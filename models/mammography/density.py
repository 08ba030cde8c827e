"""Breast density: percent dense area and the BI-RADS 5th-edition category, per breast and per exam.

Mapping (documented here and in the model card). The BI-RADS Atlas 5th edition (2013) describes
the four composition categories in words and dropped the percentage bands of the 4th edition:
a = almost entirely fatty, b = scattered areas of fibroglandular density, c = heterogeneously
dense, d = extremely dense. An automated tool must still map its measure to a category. This
package measures the *percent dense area* (fibroglandular area / breast area, pectoral muscle
excluded, in %) and maps it with the 4th-edition quartiles (BI-RADS Atlas 4th edition, 2003:
"< 25 % glandular", "25-50 %", "51-75 %", "> 75 %") that area-based tools use:

    a: < 25 %    b: 25 – 50 %    c: > 50 – 75 %    d: > 75 %

The 4th edition's bands are closed at 50 and at 75 (50 % is b, 75 % is c: a value at a cut point
stays in the lower grade); its "51-75 %" is read as "above 50 up to 75" so that no value falls
between bands (50.4 % is c). ``MAPPING`` is this rule as one line, shown on every output.

Dense tissue per view is the network's dense channel (logit >= 0) unless an intensity rule finds at least
:data:`OVERRIDE_POINTS` percentage points more (:func:`dense_estimate`). The intensity rule that does not depend on texture: pixels of the breast,
smoothed over 0.5 mm, at least :data:`DENSE_ABOVE_FAT` above the breast's own fat level once the image is
mapped to its air and fat levels (:func:`models.mammography.preprocess.relative_to_breast`; the display
window, vendor scale and compressed thickness drop out). The margin was chosen on family-A calibration
phantoms (seeds 20000-20007: bias +0.5 points, 88 % category agreement per view); the intensity rule
catches what a network trained on one texture misses on another (issue 28: c read as b; on family B the
network's channel read c and d breasts as a), and errs towards more fibroglandular tissue, the safer
error. An extremely dense breast, with no fat more than 15 mm inside the skin, takes its fat level from the
subcutaneous shell (:func:`models.mammography.preprocess.breast_levels`); read against its glandular interior
instead, every family-B breast above 75 % dense had come out low, d as a.

(Volumetric tools use other cut points, e.g. 4.5 / 7.5 / 15.5 % of breast *volume*; they do not
apply to an area measure.) A breast's percent dense area is the mean over its CC and MLO views;
the exam category is the denser (worst) side.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.errors import ModelError
from models.mammography.preprocess import REFERENCE_FAT

#: Cut points between a|b, b|c and c|d, in percent dense area: a < 25 <= b <= 50 < c <= 75 < d.
CUT_POINTS_PERCENT: tuple[float, float, float] = (25.0, 50.0, 75.0)
#: The mapping as shown on the outputs (SR, summary image, job summary).
MAPPING = ("BI-RADS density from percent dense area, 4th-edition quartiles: a < 25 %, b 25-50 %, "
           "c > 50-75 %, d > 75 %")
CATEGORIES: tuple[str, str, str, str] = ("a", "b", "c", "d")
DESCRIPTIONS: dict[str, str] = {
    "a": "almost entirely fatty",
    "b": "scattered areas of fibroglandular density",
    "c": "heterogeneously dense",
    "d": "extremely dense",
}


def birads_density(percent_dense: float) -> str:
    """BI-RADS composition category ('a'–'d') of a percent dense area (0–100 %).

    Raises:
        ModelError: the value is not a number in [0, 100].
    """
    if not np.isfinite(percent_dense) or not 0.0 <= percent_dense <= 100.0:
        raise ModelError(f"percent dense area {percent_dense!r} is outside [0, 100] %")
    a_b, b_c, c_d = CUT_POINTS_PERCENT
    if percent_dense < a_b:
        return "a"
    if percent_dense <= b_c:
        return "b"
    if percent_dense <= c_d:
        return "c"
    return "d"


#: Dense = at least this much above the fat level, in network-input units (fat 0.345, air -0.14; 0.05 is
#: 10 % of fat's attenuation, below the weakest glandular contrast of either phantom family, 25 %).
DENSE_ABOVE_FAT = 0.05
#: Smoothing before the intensity rule (quantum noise and texture), mm.
DENSE_SMOOTH_MM = 0.5


def intensity_dense(x: np.ndarray, tissue: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Fibroglandular pixels by intensity: *x* (the breast-relative network input,
    :func:`models.mammography.analysis.breast_relative`) smoothed over :data:`DENSE_SMOOTH_MM`, at least
    :data:`DENSE_ABOVE_FAT` above :data:`~models.mammography.preprocess.REFERENCE_FAT`, inside *tissue*."""
    smooth = ndimage.gaussian_filter(x.astype(np.float32), DENSE_SMOOTH_MM / spacing_mm)
    return tissue & (smooth >= REFERENCE_FAT + DENSE_ABOVE_FAT)


#: The intensity rule replaces the network's dense mask when it finds this many percentage points more.
OVERRIDE_POINTS = 10.0


def dense_estimate(network: np.ndarray, intensity: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """The network's dense mask, or the intensity rule's when that finds at least :data:`OVERRIDE_POINTS` more
    percent of *tissue* dense (a texture the network does not recognise reads as fat to it; on the training
    family the two agree within a few points, and the network's mask is kept there)."""
    n = max(1, int(tissue.sum()))
    gap = 100.0 * (int((intensity & tissue).sum()) - int((network & tissue).sum())) / n
    return intensity if gap >= OVERRIDE_POINTS else network


def percent_dense_area(dense: np.ndarray, breast: np.ndarray, pectoral: np.ndarray | None = None) -> float:
    """Dense pixels as a percentage of breast pixels (pectoral muscle excluded from both).

    Raises:
        ModelError: the breast mask is empty or the shapes differ.
    """
    if dense.shape != breast.shape or (pectoral is not None and pectoral.shape != breast.shape):
        raise ModelError(f"density masks differ in shape: dense {dense.shape}, breast {breast.shape}")
    region = breast if pectoral is None else breast & ~pectoral
    n = int(region.sum())
    if n == 0:
        raise ModelError("percent dense area: the breast mask is empty")
    return 100.0 * float((dense & region).sum()) / n


@dataclass(frozen=True)
class BreastDensity:
    laterality: str  # "L" | "R"
    percent_dense: float  # mean over the views of this breast, %
    category: str  # "a" – "d"
    views: tuple[str, ...]  # views used, e.g. ("CC", "MLO")


@dataclass(frozen=True)
class ExamDensity:
    breasts: tuple[BreastDensity, ...]
    category: str  # the worst (densest) side

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.category]

    @property
    def mapping(self) -> str:
        """The percent-to-category rule used (:data:`MAPPING`), to show beside the category."""
        return MAPPING


def exam_density(per_view: Mapping[tuple[str, str], float]) -> ExamDensity:
    """Density per breast (mean of its views) and for the exam (worst side).

    *per_view* maps (laterality, view) to the percent dense area of that image.

    Raises:
        ModelError: no view given.
    """
    if not per_view:
        raise ModelError("exam density: no view with a density measure")
    breasts = []
    for side in sorted({lat for lat, _ in per_view}, reverse=True):
        views = tuple(sorted(v for lat, v in per_view if lat == side))
        pd = float(np.mean([per_view[(side, v)] for v in views]))
        breasts.append(BreastDensity(side, pd, birads_density(pd), views))
    return ExamDensity(tuple(breasts), max(b.category for b in breasts))
