"""Dataset cases (:class:`training.readers.case.Case`, one 2D mammogram each) -> the detector's input and targets.

The input is built as the service builds it (:mod:`models.mammography.pipeline`, :mod:`models.mammography.analysis`):
the image flipped into the canonical orientation (chest wall at column 0, :mod:`models.mammography.orientation`,
the only place that decides flips), resampled to :data:`WORKING_SPACING_MM` with
:func:`models.mammography.preprocess.resample`, normalised by its display window
(:func:`models.mammography.preprocess.normalise`). Three things the service reads from the DICOM header come with
the Case's image labels (``extra``, :func:`training.readers.common.display_labels`), each with the service's own
fallback where the header lacks it:

- orientation: Patient Orientation when present (:func:`models.mammography.orientation.view_orientation`, which
  also refuses labels that contradict the image); else, as the service does without it, the columns are flipped
  when the image content puts the chest wall on the right (rows as stored);
- spacing: the spacing at the breast (Imager Pixel Spacing over the magnification factor, or Pixel Spacing); where
  the dataset gives none (CBIS-DDSM film scans: ``pixel_spacing = unknown``) the caller's *assumed_spacing_mm*;
- display window: the first VOI window (mirrored for MONOCHROME1 as the pixels are); without one the
  1st-99.9th percentile range of the image.

Laterality and view are the dataset's (CSV columns, or the header for ``dicom-seg``): a case without them is
skipped, as the service does not analyse an image of unknown breast or view.

Targets, per pixel of the canonical working image (three channels, :data:`models.mammography.network.CHANNELS`):

- ``mass``: the label map's "mass" pixels (CBIS-DDSM ROI masks, INbreast outlines, a SEG segment named "mass"),
  else the ellipse inscribed in each box whose category names a mass (VinDr-Mammo);
- ``calcification_cluster``: label pixels named "calcification" or "cluster" (dilated by 1 mm so that single
  calcification points make a region), else the boxes whose category names a calcification;
- ``dense``: no public layout gives fibroglandular masks, only the BI-RADS density (a-d). The target is the
  brightest share of the breast tissue (pectoral muscle excluded) equal to the middle of the category's band of
  percent dense area (:data:`DENSITY_TARGET_PERCENT`: a 12.5 %, b 37.5 %, c 62.5 %, d 87.5 %), so that the service's
  measure (:func:`models.mammography.density.percent_dense_area` -> :func:`birads_density`) gives the labelled
  category on the target. Without a density label the channel is left out of the loss (weight 0).

Boxes of other categories (asymmetry, architectural distortion …) are kept for evaluation only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.errors import ModelError
from models.mammography.orientation import Orientation, view_orientation
from models.mammography.preprocess import WORKING_SPACING_MM, normalise, resample
from models.mammography.segmentation import BreastSegmentation, segment_breast
from training.readers.case import Case

LOGGER = logging.getLogger(__name__)

#: Percent dense area of the pseudo-label per BI-RADS category: the middle of the category's band.
DENSITY_TARGET_PERCENT = {"a": 12.5, "b": 37.5, "c": 62.5, "d": 87.5}
DENSITY_GRADES = ("a", "b", "c", "d")
#: Spacing assumed when a dataset gives none, mm (DDSM film scans: 42-50 µm).
ASSUMED_SPACING_MM = 0.05
_CALC_DILATION_MM = 1.0


class CaseSkipped(Exception):
    """A case that gives no sample; the message is the reason."""


@dataclass(frozen=True)
class TruthBox:
    """A finding on the canonical working image: (r0, c0, r1, c1) pixels, ends exclusive, and its kind
    (``mass``, ``calcification_cluster`` or ``other``)."""

    kind: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class MammoView:
    """One case as the detector sees it (canonical orientation, working spacing).

    *image*: working-resolution intensities (the case's units); *x*: the normalised network input (not padded);
    *target*: (3, H, W) float32 in {0, 1}; *weight*: (3,) loss weight per channel (dense 0 without a density label);
    *segmentation*: the service's breast segmentation of *image*.
    """

    case_id: str
    laterality: str
    view: str
    image: np.ndarray
    window: tuple[float, float]
    x: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    density: str | None
    boxes: tuple[TruthBox, ...]
    segmentation: BreastSegmentation
    orientation: Orientation
    stored_shape: tuple[int, int]


def kind_of(category: str) -> str:
    """``mass``, ``calcification_cluster`` or ``other`` for a finding category or label name."""
    text = category.lower()
    if "mass" in text:
        return "mass"
    if "calc" in text or "cluster" in text:
        return "calcification_cluster"
    return "other"


def _spacing(case: Case, assumed_spacing_mm: float) -> float:
    extra = dict(case.image_labels.extra)
    if "breast_spacing_mm" in extra:
        row, col = (float(v) for v in extra["breast_spacing_mm"].split())
    elif extra.get("pixel_spacing") == "unknown":
        return assumed_spacing_mm
    else:
        _, row, col = case.image.spacing_mm
    if not row > 0 or abs(row - col) > 1e-3 * row:
        raise CaseSkipped(f"pixel spacing {row:g} x {col:g} mm is not square and positive")
    return float(row)


def display_window(case: Case, pixels: np.ndarray) -> tuple[float, float]:
    """(centre, width) of the image's VOI window in the units of *pixels* (the case's stored-resolution pixels),
    else framing their 1st-99.9th percentile (see the module)."""
    extra = dict(case.image_labels.extra)
    if "window" in extra:
        centre, width = (float(v) for v in extra["window"].split())
        if extra.get("photometric") == "MONOCHROME1":  # the reader inverted the pixels as max + min - stored
            centre = float(pixels.max()) + float(pixels.min()) - centre
        if width > 0:
            return centre, width
    lo, hi = (float(v) for v in np.percentile(pixels, (1.0, 99.9)))
    return (lo + hi) / 2.0, max(hi - lo, 1e-6)


def _patient_orientation(case: Case) -> tuple[str, str] | None:
    value = dict(case.image_labels.extra).get("patient_orientation", "")
    parts = value.split("\\")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def canonical_box(box: tuple[float, float, float, float], orientation: Orientation,
                  shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """A stored-image box (r0, c0, r1, c1; ends exclusive) in canonical coordinates (flips only)."""
    r0, c0, r1, c1 = box
    if orientation.flip_rows:
        r0, r1 = shape[0] - r1, shape[0] - r0
    if orientation.flip_cols:
        c0, c1 = shape[1] - c1, shape[1] - c0
    return r0, c0, r1, c1


def _mask_to_working(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    return resample(mask.astype(np.float32), spacing_mm, WORKING_SPACING_MM) >= 0.5


def _box_mask(shape: tuple[int, int], box: tuple[float, float, float, float], ellipse: bool) -> np.ndarray:
    r0, c0, r1, c1 = box
    rr, cc = np.mgrid[:shape[0], :shape[1]] + 0.5
    if not ellipse:
        return (rr >= r0) & (rr < r1) & (cc >= c0) & (cc < c1)  # type: ignore[no-any-return]
    cr, ccen = (r0 + r1) / 2, (c0 + c1) / 2
    hr, hc = max((r1 - r0) / 2, 0.5), max((c1 - c0) / 2, 0.5)
    return ((rr - cr) / hr) ** 2 + ((cc - ccen) / hc) ** 2 <= 1.0  # type: ignore[no-any-return]


def _label_masks(case: Case, orientation: Orientation) -> dict[str, np.ndarray]:
    """Canonical stored-resolution masks per kind from the case's label map (empty without one)."""
    if case.label is None:
        return {}
    voxels = orientation.to_canonical(case.label.voxels[0])
    out: dict[str, np.ndarray] = {}
    for value, name in case.label.names.items():
        kind = kind_of(str(name))
        if kind != "other":
            out[kind] = out.get(kind, np.zeros(voxels.shape, dtype=bool)) | (voxels == value)
    return out


def _truth_boxes(case: Case, orientation: Orientation, stored: tuple[int, int], masks: dict[str, np.ndarray],
                 scale: tuple[float, float]) -> tuple[TruthBox, ...]:
    """Findings on the working grid: the case's boxes, else the components of its label masks."""
    fr, fc = scale
    out = []
    if case.boxes:
        for b in case.boxes:
            r0, c0, r1, c1 = canonical_box((b.row0, b.col0, b.row1, b.col1), orientation, stored)
            out.append(TruthBox(kind_of(b.category), (r0 * fr, c0 * fc, r1 * fr, c1 * fc)))
        return tuple(out)
    for kind, mask in masks.items():
        components, _ = ndimage.label(mask)
        for sl in ndimage.find_objects(components):
            if sl is not None:
                out.append(TruthBox(kind, (sl[0].start * fr, sl[1].start * fc, sl[0].stop * fr, sl[1].stop * fc)))
    return tuple(out)


def dense_target(image: np.ndarray, tissue: np.ndarray, density: str) -> np.ndarray:
    """The brightest :data:`DENSITY_TARGET_PERCENT` [*density*] % of the *tissue* pixels of *image* (see the module)."""
    values = image[tissue]
    if values.size == 0:
        return np.zeros(image.shape, dtype=bool)
    cut = float(np.percentile(values, 100.0 - DENSITY_TARGET_PERCENT[density]))
    return tissue & (image >= cut)  # type: ignore[no-any-return]


def _targets(case: Case, orientation: Orientation, stored: tuple[int, int], spacing_mm: float,
             working: tuple[int, int]) -> tuple[np.ndarray, tuple[TruthBox, ...]]:
    """(mass, calcification cluster) masks on the working grid and the truth boxes."""
    masks = _label_masks(case, orientation)
    scale = (working[0] / stored[0], working[1] / stored[1])
    boxes = _truth_boxes(case, orientation, stored, masks, scale)
    out = np.zeros((2, *working), dtype=bool)
    for channel, kind in enumerate(("mass", "calcification_cluster")):
        if kind == "mass" and kind in masks:
            out[channel] = _mask_to_working(masks[kind], spacing_mm)
        elif kind in masks:  # calcification points survive resampling as marks, then grow into a region
            radius = max(1, int(round(_CALC_DILATION_MM / WORKING_SPACING_MM)))
            marks = _mask_to_working(masks[kind], spacing_mm) | _point_marks(masks[kind], scale, working)
            out[channel] = ndimage.binary_dilation(marks, iterations=radius)
        else:
            for b in boxes:
                if b.kind == kind:
                    out[channel] |= _box_mask(working, b.box, ellipse=kind == "mass")
    return out, boxes


def _point_marks(mask: np.ndarray, scale: tuple[float, float], working: tuple[int, int]) -> np.ndarray:
    """Single labelled pixels (calcification points) placed on the working grid (resampling would lose them)."""
    out = np.zeros(working, dtype=bool)
    rows, cols = np.nonzero(mask)
    r = np.clip(((rows + 0.5) * scale[0]).astype(int), 0, working[0] - 1)
    c = np.clip(((cols + 0.5) * scale[1]).astype(int), 0, working[1] - 1)
    out[r, c] = True
    return out


def mammo_view(case: Case, assumed_spacing_mm: float = ASSUMED_SPACING_MM) -> MammoView:
    """The detector's input and targets for a 2D *case* (see the module docstring).

    Raises:
        CaseSkipped: not a 2D image, no laterality or view, an orientation the service refuses, non-square
            pixels, or no breast found by the service's segmentation.
    """
    labels = case.image_labels
    if case.image.shape[0] != 1:
        raise CaseSkipped(f"a {case.image.shape[0]}-slice volume, not a 2D mammogram")
    if labels.laterality is None or not labels.view:
        raise CaseSkipped("no laterality or view (the service analyses no image of unknown breast or view)")
    pixels = case.image.voxels[0].astype(np.float32)
    try:
        orientation = view_orientation(labels.laterality, labels.view, _patient_orientation(case), pixels)
        spacing = _spacing(case, assumed_spacing_mm)
        canonical = np.ascontiguousarray(orientation.to_canonical(pixels))
        image = resample(canonical, spacing)
        seg = segment_breast(image, WORKING_SPACING_MM, labels.view)
    except ModelError as exc:
        raise CaseSkipped(str(exc)) from exc
    window = display_window(case, pixels)
    stored: tuple[int, int] = pixels.shape  # type: ignore[assignment]
    lesions, boxes = _targets(case, orientation, stored, spacing, image.shape)  # type: ignore[arg-type]
    tissue = seg.breast & ~seg.pectoral
    density = labels.density
    dense = dense_target(image, tissue, density) if density else np.zeros(image.shape, dtype=bool)
    target = np.stack([dense, lesions[0] & seg.breast, lesions[1] & seg.breast]).astype(np.float32)
    weight = np.array([1.0 if density else 0.0, 1.0, 1.0], dtype=np.float32)
    return MammoView(case.case_id, labels.laterality, labels.view, image, window, normalise(image, *window), target,
                     weight, density, boxes, seg, orientation, stored)


def patch_centres(view: MammoView, count: int, patch: int, rng: np.random.Generator,
                  lesion_share: float = 0.6) -> list[tuple[int, int]]:
    """*count* patch centres (row, col): a *lesion_share* on target lesions (jittered by a third of the patch),
    the rest on random breast pixels."""
    lesion_pixels = np.argwhere(view.target[1:].any(axis=0))
    breast_pixels = np.argwhere(view.segmentation.breast)
    if breast_pixels.size == 0:
        breast_pixels = np.argwhere(np.ones(view.x.shape, dtype=bool))
    out = []
    jitter = max(1, patch // 3)
    for _ in range(count):
        if lesion_pixels.size and rng.random() < lesion_share:
            r, c = lesion_pixels[rng.integers(len(lesion_pixels))]
            r, c = r + rng.integers(-jitter, jitter + 1), c + rng.integers(-jitter, jitter + 1)
        else:
            r, c = breast_pixels[rng.integers(len(breast_pixels))]
        out.append((int(r), int(c)))
    return out


def crop(array: np.ndarray, centre: tuple[int, int], patch: int, fill: float) -> np.ndarray:
    """A (..., patch, patch) crop of *array* (..., H, W) centred on *centre*, *fill* outside the image."""
    out = np.full((*array.shape[:-2], patch, patch), fill, dtype=np.float32)
    r0, c0 = centre[0] - patch // 2, centre[1] - patch // 2
    sr = slice(max(0, r0), min(array.shape[-2], r0 + patch))
    sc = slice(max(0, c0), min(array.shape[-1], c0 + patch))
    if sr.stop > sr.start and sc.stop > sc.start:
        out[..., sr.start - r0:sr.stop - r0, sc.start - c0:sc.stop - c0] = array[..., sr, sc]
    return out
