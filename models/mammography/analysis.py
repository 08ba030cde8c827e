"""Per-view and per-exam analysis, shared by the pipeline and by evaluation on phantoms.

Input per view: the image in canonical orientation at :data:`WORKING_SPACING_MM`, in its stored
intensity units, and its display window. The network is any ``predict`` callable (ONNX Runtime or
Triton through :mod:`models.runtime` in the service, torch during training) taking a (1, 1, H, W)
float32 array and returning (1, 3, H, W) logits (dense, mass, calcification cluster).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.errors import ModelError, RetryLater
from models.mammography.density import ExamDensity, dense_estimate, exam_density, intensity_dense, percent_dense_area
from models.mammography.detection import KINDS, Calibration, Region, find_regions, link_views
from models.mammography.network import CHANNELS
from models.mammography.preprocess import (
    WORKING_SPACING_MM,
    breast_levels,
    normalise,
    pad_to_multiple,
    relative_to_breast,
)
from models.mammography.segmentation import BreastSegmentation, segment_breast

LOGGER = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]
#: Input height/width multiple required by the network (product of its strides).
INPUT_MULTIPLE = 16
#: No mark within this distance of the skin line (the chest wall edge, column 0, does not count as skin).
SKIN_MARGIN_MM = 3.0
#: No mark within this distance of the segmented pectoral muscle.
PECTORAL_MARGIN_MM = 5.0


@dataclass(frozen=True)
class ViewAnalysis:
    laterality: str
    view: str
    segmentation: BreastSegmentation
    dense: np.ndarray  # bool, fibroglandular tissue
    percent_dense: float
    candidates: tuple[Region, ...]  # every region with peak probability >= 0.05, highest first (uncalibrated)
    peak_logits: dict[str, float]  # kind -> highest logit of the kept candidates (-50 when none)
    spacing_mm: float = WORKING_SPACING_MM

    @property
    def shape(self) -> tuple[int, int]:
        return self.segmentation.breast.shape  # type: ignore[return-value]


def breast_relative(image: np.ndarray, window: tuple[float, float], seg: BreastSegmentation) -> np.ndarray:
    """*image* normalised by its display window and then mapped to the breast's own air and fat levels
    (:func:`models.mammography.preprocess.relative_to_breast`): the display LUT's window, the vendor's pixel
    scale and the compressed thickness drop out. The density's intensity rule reads this image.

    Raises:
        ModelError: a window width that is not positive; air and fat levels that cannot be told apart.
    """
    x = normalise(image, *window)
    return relative_to_breast(x, *breast_levels(x, seg.breast, seg.pectoral, WORKING_SPACING_MM))


def predict_logits(image: np.ndarray, window: tuple[float, float], predict: Predict,
                   levels: tuple[float, float] | None = None) -> np.ndarray:
    """Network logits (3, H, W) for a canonical working-resolution image. The network sees the image normalised
    by its display window (v1), or, given the breast's (air, fat) *levels* (:func:`breast_levels`), that image
    mapped to them (:func:`relative_to_breast`): for versions whose card says ``network_input:
    breast_relative`` (:data:`models.mammography.inference.BREAST_RELATIVE`).

    Raises:
        ModelError: the network returned an unexpected shape or non-finite values.
    """
    x = normalise(image, *window)
    background = float(normalise(np.array([0.0]), *window)[0])
    if levels is not None:
        x = relative_to_breast(x, *levels)
        background = float(relative_to_breast(np.array([background]), *levels)[0])
    padded = pad_to_multiple(x, INPUT_MULTIPLE, min(background, float(x.min())))
    out = np.asarray(predict(padded[None, None].astype(np.float32)))
    if out.shape != (1, len(CHANNELS), *padded.shape):
        raise ModelError(f"mammography network: output shape {out.shape}, expected (1, {len(CHANNELS)}, "
                         f"{padded.shape[0]}, {padded.shape[1]})")
    if not np.isfinite(out).all():
        raise ModelError("mammography network: non-finite logits")
    return out[0, :, : image.shape[0], : image.shape[1]]


def markable(seg: BreastSegmentation, spacing_mm: float) -> np.ndarray:
    """Where a lesion's centre may lie to be marked or scored: inside the breast, at least :data:`SKIN_MARGIN_MM` inside the skin line
    and at least :data:`PECTORAL_MARGIN_MM` from the pectoral muscle (its edge and top, where the network's
    mass channel fires on the muscle itself). Lesions there are left to the reader (model card limitation)."""
    depth = ndimage.distance_transform_edt(np.pad(seg.breast, ((0, 0), (1, 0)), mode="edge"))[:, 1:] * spacing_mm
    allowed = seg.breast & (depth >= SKIN_MARGIN_MM)
    if seg.pectoral.any():
        near = ndimage.distance_transform_edt(~seg.pectoral) * spacing_mm < PECTORAL_MARGIN_MM
        allowed &= ~near
    return allowed


def _at(mask: np.ndarray, centre_rc: tuple[float, float]) -> bool:
    """*mask* at the pixel holding *centre_rc* (pixel centres at +0.5)."""
    r, c = (int(np.clip(np.floor(v), 0, n - 1)) for v, n in zip(centre_rc, mask.shape, strict=True))
    return bool(mask[r, c])


def analyse_view(image: np.ndarray, laterality: str, view: str, window: tuple[float, float],
                 predict: Predict, relative_input: bool = False) -> ViewAnalysis:
    """Segmentation, density and lesion candidates of one canonical working-resolution image. *relative_input*:
    the network was trained on the breast-relative image (its card's ``network_input``, see
    :func:`predict_logits`); False for v1.

    Raises:
        RetryLater: from the runtime (inference server down or model not ready), unchanged.
        ModelError: segmentation or network failures (naming the view).
    """
    try:
        seg = segment_breast(image, WORKING_SPACING_MM, view)
        x = normalise(image, *window)
        levels = breast_levels(x, seg.breast, seg.pectoral, WORKING_SPACING_MM)
        logits = predict_logits(image, window, predict, levels if relative_input else None)
        relative = relative_to_breast(x, *levels)
    except RetryLater:
        raise
    except ModelError as exc:
        raise ModelError(f"{laterality} {view}: {exc}") from exc
    tissue = seg.breast & ~seg.pectoral
    dense = dense_estimate((logits[0] >= 0.0) & tissue, intensity_dense(relative, tissue, WORKING_SPACING_MM), tissue)
    allowed = markable(seg, WORKING_SPACING_MM)
    candidates: list[Region] = []
    peaks: dict[str, float] = {}
    for channel, kind in ((1, KINDS[0]), (2, KINDS[1])):
        found = find_regions(logits[channel], kind, tissue, WORKING_SPACING_MM, seg.nipple_rc)
        candidates += [r for r in found if _at(allowed, r.centre_rc)]
        peaks[kind] = max((r.logit for r in candidates if r.kind == kind), default=-50.0)
    return ViewAnalysis(laterality, view, seg, dense, percent_dense_area(dense, seg.breast, seg.pectoral),
                        tuple(sorted(candidates, key=lambda r: -r.logit)), peaks)


@dataclass(frozen=True)
class Finding:
    """A marked lesion of one breast, on one view or linked across CC and MLO."""

    finding_id: int
    kind: str
    laterality: str
    regions: dict[str, Region]  # view -> region

    @property
    def score(self) -> int:
        return max(r.score for r in self.regions.values())

    @property
    def linked(self) -> bool:
        return len(self.regions) > 1


@dataclass(frozen=True)
class ExamAnalysis:
    views: dict[tuple[str, str], ViewAnalysis]
    density: ExamDensity
    findings: tuple[Finding, ...]
    raw_score: float  # highest calibrated lesion logit of the exam (ranked by the exam score)
    exam_score: int  # 1–10


def _findings_of_breast(side: str, views: Mapping[tuple[str, str], ViewAnalysis],
                        calibration: Calibration) -> list[tuple[str, dict[str, Region]]]:
    marked = {v: [calibration.score(r) for r in a.candidates if calibration.marked(r)]
              for (lat, v), a in views.items() if lat == side}
    cc, mlo = marked.get("CC", []), marked.get("MLO", [])
    links = link_views(cc, mlo, calibration.link_tolerance_mm)
    found: list[tuple[str, dict[str, Region]]] = [(cc[i].kind, {"CC": cc[i], "MLO": mlo[j]}) for i, j in links]
    linked_cc, linked_mlo = {i for i, _ in links}, {j for _, j in links}
    found += [(r.kind, {"CC": r}) for i, r in enumerate(cc) if i not in linked_cc]
    found += [(r.kind, {"MLO": r}) for j, r in enumerate(mlo) if j not in linked_mlo]
    for view, regions in marked.items():
        if view not in ("CC", "MLO"):
            found += [(r.kind, {view: r}) for r in regions]
    return found


def analyse_exam(views: Mapping[tuple[str, str], ViewAnalysis], calibration: Calibration) -> ExamAnalysis:
    """Density per breast and exam, findings (marked regions, linked CC/MLO), exam score.

    Raises:
        ModelError: no view given.
    """
    if not views:
        raise ModelError("mammography exam: no analysable view")
    density = exam_density({key: a.percent_dense for key, a in views.items()})
    raw: list[tuple[str, str, dict[str, Region]]] = []
    for side in sorted({lat for lat, _ in views}, reverse=True):
        raw += [(side, kind, regions) for kind, regions in _findings_of_breast(side, views, calibration)]
    raw.sort(key=lambda f: -max(r.logit for r in f[2].values()))
    findings = tuple(Finding(i + 1, kind, side, regions) for i, (side, kind, regions) in enumerate(raw))
    exam_raw = max(calibration.exam_raw(a.peak_logits) for a in views.values())
    return ExamAnalysis(dict(views), density, findings, exam_raw, calibration.exam_score(exam_raw))
