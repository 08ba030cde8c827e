"""Mammography: one 2D projection image with laterality, view and pixel spacing at the breast."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import ReadError
from imaging.headers import SourceFrame
from imaging.legacy import normalise_legacy_values
from imaging.pixels import decode_dataset, rescale_into
from imaging.provenance import PATIENT_STUDY_KEYWORDS

LOGGER = logging.getLogger(__name__)

#: View Code Sequence meanings (CID 4014) → the usual abbreviation; longest meaning matched first.
_VIEW_MEANINGS: tuple[tuple[str, str], ...] = (
    ("cranio-caudal exaggerated laterally", "XCCL"),
    ("cranio-caudal exaggerated medially", "XCCM"),
    ("latero-medial oblique", "LMO"),
    ("medio-lateral oblique", "MLO"),
    ("caudo-cranial", "FB"),
    ("cranio-caudal", "CC"),
    ("medio-lateral", "ML"),
    ("latero-medial", "LM"),
)


@dataclass(frozen=True, eq=False)
class Mammogram:
    """A mammography image.

    *pixels*: (rows, columns) float32 after Rescale Slope/Intercept, inverted
    for MONOCHROME1 so that higher values are brighter (*inverted* says so).
    *pixel_spacing_mm*: (row, column) spacing at the breast: Pixel Spacing when
    present, else Imager Pixel Spacing ÷ Estimated Radiographic Magnification
    Factor (*spacing_source* says which). *patient_orientation*: the patient
    directions of the row and column axes (Patient Orientation, e.g. ("A", "R")).
    """

    pixels: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    spacing_source: str
    laterality: str
    view: str
    patient_orientation: tuple[str, ...]
    presentation_intent: str
    inverted: bool
    source: SourceFrame
    study_uid: str
    series_uid: str
    modality: str

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    @property
    def headers(self) -> list[Dataset]:
        return [self.source.header]


#: Codes that name one breast or a side: (scheme, value) -> L/R (SCT and the retired SRT codes).
_SIDE_CODES: dict[tuple[str, str], str] = {
    ("SCT", "80248007"): "L", ("SRT", "T-04030"): "L", ("SCT", "7771000"): "L", ("SRT", "G-A101"): "L",
    ("SCT", "73056007"): "R", ("SRT", "T-04020"): "R", ("SCT", "24028007"): "R", ("SRT", "G-A100"): "R",
}
_SIDE_MEANINGS = {"left": "L", "left breast": "L", "right": "R", "right breast": "R"}


def _code_side(item: Dataset) -> str | None:
    key = (str(item.get("CodingSchemeDesignator", "")).upper(), str(item.get("CodeValue", "")).upper())
    return _SIDE_CODES.get(key) or _SIDE_MEANINGS.get(str(item.get("CodeMeaning", "")).strip().lower())


def laterality_sources(ds: Dataset) -> dict[str, str]:
    """Every attribute of *ds* that names the breast, as ``{attribute: 'L' | 'R'}``: Image Laterality,
    (series) Laterality, Frame Laterality, and left/right breast or side codes in the View Code
    Sequence, its View Modifier Code Sequence, the Anatomic Region Sequence and its Anatomic Region
    Modifier Sequence. Values other than L/R (B, U, empty) are not listed."""
    found: dict[str, str] = {}
    shared = ds.get("SharedFunctionalGroupsSequence")
    frame = shared[0].FrameAnatomySequence[0].get("FrameLaterality") if shared and "FrameAnatomySequence" in \
        shared[0] else None
    for name, value in (("ImageLaterality", ds.get("ImageLaterality")), ("Laterality", ds.get("Laterality")),
                        ("FrameLaterality", frame)):
        if str(value or "").strip().upper() in ("L", "R"):
            found[name] = str(value).strip().upper()
    for outer, inner in (("ViewCodeSequence", "ViewModifierCodeSequence"),
                         ("AnatomicRegionSequence", "AnatomicRegionModifierSequence")):
        for item in ds.get(outer) or []:
            for name, code in ((outer, item), *((inner, m) for m in item.get(inner) or [])):
                side = _code_side(code)
                if side is not None:
                    found.setdefault(name, side)
    return found


def laterality_of(ds: Dataset) -> str:
    """``L`` or ``R``: what every attribute of :func:`laterality_sources` says.

    Raises:
        ReadError: none of them says L or R, or they disagree (the image is not read as either breast).
    """
    sources = laterality_sources(ds)
    sides = set(sources.values())
    if len(sides) > 1:
        raise ReadError(f"instance {ds.get('SOPInstanceUID', '?')}: laterality attributes disagree "
                        f"({', '.join(f'{k} {v}' for k, v in sorted(sources.items()))})")
    if not sides:
        raise ReadError(f"instance {ds.get('SOPInstanceUID', '?')}: no Image Laterality or Laterality of L or R "
                        f"(nor a left/right breast code)")
    return sides.pop()


def view_of(ds: Dataset) -> str:
    """View abbreviation (CC, MLO, ML, LM, …) from View Position, else the View Code Sequence meaning.

    Raises:
        ReadError: neither gives a view.
    """
    position = str(ds.get("ViewPosition", "") or "").strip().upper()
    if position:
        return position
    for item in ds.get("ViewCodeSequence", []):
        meaning = str(item.get("CodeMeaning", "")).lower()
        for text, abbreviation in _VIEW_MEANINGS:
            if text in meaning:
                return abbreviation
    raise ReadError(f"instance {ds.get('SOPInstanceUID', '?')}: no View Position or known View Code Sequence")


def spacing_of(ds: Dataset) -> tuple[tuple[float, float], str]:
    """(row, column) pixel spacing at the breast in mm, and where it came from.

    Raises:
        ReadError: neither Pixel Spacing nor Imager Pixel Spacing is present.
    """
    if ds.get("PixelSpacing"):
        row, col = (float(v) for v in ds.PixelSpacing[:2])
        return (row, col), "PixelSpacing"
    if ds.get("ImagerPixelSpacing"):
        row, col = (float(v) for v in ds.ImagerPixelSpacing[:2])
        factor = float(ds.get("EstimatedRadiographicMagnificationFactor") or 0.0)
        if factor > 0:
            return (row / factor, col / factor), "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
        return (row, col), "ImagerPixelSpacing (no magnification factor)"
    raise ReadError(f"instance {ds.get('SOPInstanceUID', '?')}: neither Pixel Spacing nor Imager Pixel Spacing")


def load_mammogram(path: Path) -> Mammogram:
    """Read one mammography image (any supported transfer syntax).

    Raises:
        ReadError: not DICOM, not a single greyscale frame, or laterality/view/spacing missing.
    """
    try:
        ds = dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ReadError(f"{path}: cannot read DICOM: {exc}") from exc
    normalise_legacy_values(ds, PATIENT_STUDY_KEYWORDS)  # what every result copies
    what = f"instance {ds.get('SOPInstanceUID', '?')}"
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ReadError(f"{what}: a mammogram must be one greyscale frame")
    spacing, spacing_source = spacing_of(ds)
    laterality, view = laterality_of(ds), view_of(ds)
    stored = decode_dataset(ds, what=what)[0].astype(np.int64)
    inverted = str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    if inverted:  # PS3.3 C.7.6.3.1.2: minimum stored value is white; flip within the stored range
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        stored = -1 - stored if signed else (1 << int(ds.get("BitsStored", ds.BitsAllocated))) - 1 - stored
    pixels = np.empty(stored.shape, dtype=np.float32)
    rescale_into(stored, float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0),
                 pixels)
    header = copy.copy(ds)
    del header["PixelData"]
    LOGGER.debug("%s: %s %s, spacing %s from %s", what, laterality, view, spacing, spacing_source)
    return Mammogram(
        pixels=pixels, pixel_spacing_mm=spacing, spacing_source=spacing_source, laterality=laterality, view=view,
        patient_orientation=tuple(str(v) for v in (ds.get("PatientOrientation") or ())),
        presentation_intent=str(ds.get("PresentationIntentType", "")), inverted=inverted,
        source=SourceFrame(str(ds.SOPClassUID), str(ds.SOPInstanceUID), None, Path(path), header),
        study_uid=str(ds.get("StudyInstanceUID", "")), series_uid=str(ds.get("SeriesInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
    )
