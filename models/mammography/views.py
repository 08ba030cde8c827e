"""A mammography image read by :mod:`imaging.mammo` and brought to the canonical orientation.

Reading (laterality, view, spacing at the breast, MONOCHROME1 inversion, rescale) is
:func:`imaging.mammo.load_mammogram`; this module adds what the pipeline needs on top: the
"For Processing" refusal, the display window, square-pixel spacing and the canonical flips
(:func:`models.mammography.orientation.view_orientation`, the only place that flips).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from imaging.errors import ImagingError
from imaging.mammo import Mammogram, load_mammogram
from models.errors import ModelError, NoSuitableSeries
from models.mammography.orientation import Orientation, view_orientation

LOGGER = logging.getLogger(__name__)

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"


@dataclass(frozen=True, eq=False)
class CanonicalView:
    mammogram: Mammogram
    orientation: Orientation
    image: np.ndarray  # canonical orientation, float32, brighter = denser
    window: tuple[float, float]  # (centre, width) in the units of *image*
    spacing_mm: float  # square pixel spacing at the breast

    @property
    def laterality(self) -> str:
        return self.mammogram.laterality

    @property
    def view(self) -> str:
        return self.mammogram.view

    @property
    def header(self) -> Dataset:
        return self.mammogram.source.header

    @property
    def stored_shape(self) -> tuple[int, int]:
        return self.mammogram.shape


def is_for_processing(ds: Dataset) -> bool:
    """A Digital Mammography "For Processing" image (SOP class or Presentation Intent Type)."""
    return (str(ds.get("SOPClassUID", "")) == MG_FOR_PROCESSING
            or str(ds.get("PresentationIntentType", "")).upper() == "FOR PROCESSING")


def _first(value: object) -> float:
    return float(value[0]) if isinstance(value, MultiValue) else float(value)  # type: ignore[arg-type]


def display_window(m: Mammogram) -> tuple[float, float]:
    """The first VOI window of the image in the units of ``m.pixels`` (mirrored for MONOCHROME1);
    without one, the stored bit range (logged)."""
    ds = m.source.header
    bits = int(ds.get("BitsStored", 16))
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre in (None, "") or width in (None, ""):
        LOGGER.warning("image %s: no VOI window; using the stored range 0..%d", m.source.sop_instance_uid, 2**bits - 1)
        return 2.0 ** (bits - 1), 2.0**bits
    c, w = _first(centre), _first(width)
    if m.inverted:
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        top = (2**bits - 1) * slope + 2 * intercept
        c = top - c
    return c, w


def read_view(path: Path) -> CanonicalView:
    """Read a "For Presentation" mammogram and flip it to the canonical orientation.

    Raises:
        NoSuitableSeries: a "For Processing" image (raw detector data is not analysed).
        ModelError: unreadable file, missing laterality/view/spacing, non-square pixels, or a view that is
            neither CC-like nor MLO-like.
    """
    try:
        m = load_mammogram(path)
    except ImagingError as exc:
        raise ModelError(str(exc)) from exc
    if is_for_processing(m.source.header):
        # No quotes: the error is scrubbed of quoted text before it is stored (it may be a tag value).
        raise NoSuitableSeries(f"image {m.source.sop_instance_uid}: a Digital Mammography For Processing image "
                               "(unprocessed detector data) is not analysed; send the For Presentation images")
    row, col = m.pixel_spacing_mm
    if not (row > 0 and col > 0) or abs(row - col) > 1e-3 * row:
        raise ModelError(f"image {m.source.sop_instance_uid}: pixel spacing {row}×{col} mm is not square and positive")
    orientation = view_orientation(m.laterality, m.view, tuple(m.patient_orientation) if len(  # type: ignore[arg-type]
        m.patient_orientation) == 2 else None, m.pixels)
    image = np.ascontiguousarray(orientation.to_canonical(m.pixels))
    return CanonicalView(m, orientation, image, display_window(m), row)
