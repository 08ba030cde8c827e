"""The values pipelines hand to the writers: findings, measurements, segments, and who produced them.

Coordinates in these values use the source image's array indices:
``slice_index`` is the Volume's k (0 for a 2D image), points are
``(row, column)`` voxel-centre indices (floats allowed). The writers convert
them to DICOM conventions (SCOORD ``(column, row)`` with the pixel centre at
+0.5, per-frame references).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code as PydicomCode

from imaging.errors import WriteError
from imaging.uids import derive_uid, device_uid, result_uids

#: The disclaimer every output carries (ASCII for DICOM text attributes).
DISCLAIMER = "AI result - not for primary diagnosis unless validated"
#: The same, as drawn on images and PDF pages.
DISCLAIMER_DISPLAY = "AI result \u2014 not for primary diagnosis unless validated"


@dataclass(frozen=True)
class Code:
    """A coded concept: value, coding scheme designator (SCT, LOINC, DCM, UCUM, …) and meaning."""

    value: str
    scheme: str
    meaning: str

    def concept(self) -> CodedConcept:
        return CodedConcept(self.value, self.scheme, self.meaning)

    @classmethod
    def of(cls, code: PydicomCode | CodedConcept) -> Code:
        """From a pydicom ``Code`` (e.g. ``pydicom.sr.codedict.codes.SCT.Lung``) or a highdicom CodedConcept."""
        return cls(str(code.value), str(code.scheme_designator), str(code.meaning))


@dataclass(frozen=True)
class AlgorithmId:
    """Algorithm identification (TID 4019): name, version, and ``(name, value)`` parameters."""

    name: str
    version: str
    parameters: tuple[tuple[str, str], ...] = ()

    def parameter_strings(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.parameters]


@dataclass(frozen=True)
class ResultContext:
    """Who produced a result and where its UIDs come from.

    *uid_root*: the project's UID root (``2.25`` = UUID-derived). *pipeline*
    and *model_version* name the result series and derive every UID.
    *algorithm* defaults to ``AlgorithmId(pipeline, model_version)``.
    *series_number_base*: SR, SEG, SC and PDF series get base + 1 … 4.
    """

    uid_root: str
    pipeline: str
    model_version: str
    manufacturer: str = "AIWS open-source project"
    institution_name: str = ""
    algorithm: AlgorithmId | None = None
    series_number_base: int = 9900
    device_serial_number: str = "0"

    @property
    def algorithm_id(self) -> AlgorithmId:
        return self.algorithm or AlgorithmId(self.pipeline, self.model_version)

    @property
    def device_uid(self) -> str:
        """Device UID of this algorithm version (IHE AI Results): changes with the model version."""
        return device_uid(self.uid_root, self.algorithm_id.name, self.model_version)

    def uids(self, study_uid: str, kind: str, index: int = 0) -> tuple[str, str]:
        """(Series Instance UID, SOP Instance UID) of result *kind*; *index* > 0 for further instances."""
        series, instance = result_uids(self.uid_root, study_uid, self.pipeline, self.model_version, kind)
        if index:
            instance = derive_uid(self.uid_root, study_uid, self.pipeline, self.model_version, kind, "instance",
                                  str(index))
        return series, instance

    def tracking_uid(self, study_uid: str, tracking_id: str) -> str:
        """Tracking UID of a finding: the same finding of the same run always gets the same UID."""
        return derive_uid(self.uid_root, study_uid, self.pipeline, self.model_version, "finding", tracking_id)

    def series_description(self, kind: str) -> str:
        """``AIWS <pipeline> <version> <KIND>`` (at most 64 characters)."""
        return f"AIWS {self.pipeline} {self.model_version} {kind.upper()}"[:64]

    def series_number(self, kind: str) -> int:
        return self.series_number_base + {"sr": 1, "seg": 2, "sc": 3, "pdf": 4}.get(kind, 9)


@dataclass(frozen=True)
class Measurement:
    """A numeric measurement (TID 300): concept, value, UCUM unit, optional derivation/method."""

    concept: Code
    value: float
    unit: Code
    derivation: Code | None = None
    method: Code | None = None

    def __post_init__(self) -> None:
        if self.unit.scheme != "UCUM":
            raise WriteError(f"measurement {self.concept.meaning}: unit {self.unit} must be a UCUM code")
        if not np.isfinite(self.value):
            raise WriteError(f"measurement {self.concept.meaning}: value {self.value} is not finite")


@dataclass(frozen=True)
class QualitativeEvaluation:
    """A coded evaluation, e.g. (Lung-RADS category, 4A)."""

    concept: Code
    value: Code


class Graphic(str, enum.Enum):
    """Shapes of a 2D region (SCOORD graphic types)."""

    POINT = "POINT"
    MULTIPOINT = "MULTIPOINT"
    POLYLINE = "POLYLINE"
    CIRCLE = "CIRCLE"
    ELLIPSE = "ELLIPSE"


@dataclass(frozen=True)
class ImageRegion2D:
    """A region on one slice: *points_rc* are (row, column) voxel-centre indices.

    *slice_index*: the Volume's k, 0 for one 2D image, or the image's position in a tuple of 2D images.

    POINT: one point; POLYLINE: a closed outline (first point repeated last or
    not; the writer closes it); CIRCLE: centre then a point on the circle;
    ELLIPSE: major-axis end points then minor-axis end points.
    """

    slice_index: int
    graphic: Graphic
    points_rc: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        need = {Graphic.POINT: 1, Graphic.CIRCLE: 2, Graphic.ELLIPSE: 4}.get(self.graphic)
        if need is not None and len(self.points_rc) != need:
            raise WriteError(f"region {self.graphic.value}: needs {need} points, got {len(self.points_rc)}")
        if self.graphic in (Graphic.POLYLINE, Graphic.MULTIPOINT) and len(self.points_rc) < 2:
            raise WriteError(f"region {self.graphic.value}: needs at least 2 points, got {len(self.points_rc)}")

    def center_rc(self) -> tuple[float, float]:
        """Centre of the region (row, column): the point, the circle centre, or the mean of the points."""
        if self.graphic in (Graphic.POINT, Graphic.CIRCLE):
            return self.points_rc[0]
        pts = np.asarray(self.points_rc, dtype=float)
        return float(pts[:, 0].mean()), float(pts[:, 1].mean())


class Graphic3D(str, enum.Enum):
    """Shapes of a region in the patient frame of reference (SCOORD3D graphic types)."""

    POLYGON = "POLYGON"
    ELLIPSE = "ELLIPSE"
    ELLIPSOID = "ELLIPSOID"


@dataclass(frozen=True)
class ImageRegion3D:
    """A region in the source Volume's frame of reference (SCOORD3D): *points_krc* are (k, row, column)
    voxel-centre indices, which the writer maps to patient LPS mm with the Volume's affine.

    POLYGON: at least 3 points on one plane (the writer closes it); ELLIPSE: major-axis end points then
    minor-axis end points (planar); ELLIPSOID: the end points of its three axes (6 points, a volume).
    """

    graphic: Graphic3D
    points_krc: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        need = {Graphic3D.ELLIPSE: 4, Graphic3D.ELLIPSOID: 6}.get(self.graphic)
        if need is not None and len(self.points_krc) != need:
            raise WriteError(f"3D region {self.graphic.value}: needs {need} points, got {len(self.points_krc)}")
        if self.graphic == Graphic3D.POLYGON and len(self.points_krc) < 3:
            raise WriteError(f"3D region POLYGON: needs at least 3 points, got {len(self.points_krc)}")
        if any(len(p) != 3 for p in self.points_krc):
            raise WriteError(f"3D region {self.graphic.value}: every point needs (k, row, column)")


@dataclass(frozen=True)
class Finding:
    """One finding = one measurement group in the SR.

    *tracking_id*: unique within the result (e.g. ``"nodule-1"``). Where it is:
    *segment_number* (1-based, the segment of the SEG written with it), *region* (2D, SCOORD) or
    *region3d* (in the Volume's frame of reference, SCOORD3D), or none (an exam-level finding such as a
    total score).
    *label*: short text for the summary legend (defaults to the finding type).
    """

    tracking_id: str
    finding_type: Code
    finding_site: Code | None = None
    measurements: tuple[Measurement, ...] = ()
    evaluations: tuple[QualitativeEvaluation, ...] = ()
    segment_number: int | None = None
    region: ImageRegion2D | None = None
    label: str = ""
    region3d: ImageRegion3D | None = None

    def __post_init__(self) -> None:
        if not self.tracking_id or len(self.tracking_id) > 64:
            raise WriteError(f"finding {self.tracking_id!r}: tracking id must be 1-64 characters")
        if sum(x is not None for x in (self.segment_number, self.region, self.region3d)) > 1:
            raise WriteError(f"finding {self.tracking_id}: give a segment or a region, not both")

    @property
    def display_label(self) -> str:
        return self.label or self.finding_type.meaning


@dataclass(frozen=True, eq=False)
class Segment:
    """One SEG segment: a boolean *mask* on the source grid ((k, r, c) for a Volume, (r, c) for a 2D image)."""

    label: str
    category: Code
    property_type: Code
    mask: np.ndarray = field(repr=False)
    tracking_id: str = ""
    anatomic_region: Code | None = None


@dataclass(frozen=True)
class ImageRef:
    """A source image (or one frame of a multi-frame image) a result refers to."""

    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None = None


@dataclass(frozen=True)
class Mark:
    """A mark for a presentation state (GSPS): *box* ``(row0, col0, row1, col1)`` in continuous
    stored-image coordinates (the top-left corner of the top-left pixel is (0, 0)), its text label,
    and the tracking id and UID of the finding it shows."""

    box: tuple[float, float, float, float]
    label: str
    tracking_id: str
    tracking_uid: str


@dataclass(frozen=True, eq=False)
class RenderedPage:
    """A rendered summary page for a Secondary Capture: RGB uint8 *pixels* (rows, columns, 3).

    *header*: the source header whose patient and study attributes the capture copies. *sources*: the
    images the page summarises (Source Image Sequence). *patient_orientation*: of the page's rows and
    columns, None for a page without one (left empty). *laterality*: the image laterality (a single
    breast), None when not paired. *derivation*: the Derivation Description ("" leaves it out).
    """

    pixels: np.ndarray = field(repr=False)
    header: Dataset = field(repr=False)
    sources: tuple[ImageRef, ...] = ()
    patient_orientation: tuple[str, str] | None = None
    laterality: str | None = None
    derivation: str = ""

    def __post_init__(self) -> None:
        shape = np.shape(self.pixels)
        if len(shape) != 3 or shape[2] != 3 or np.asarray(self.pixels).dtype != np.uint8:
            raise WriteError(f"rendered page: pixels must be RGB uint8 (rows, columns, 3), got {shape} "
                             f"{np.asarray(self.pixels).dtype}")


@dataclass(frozen=True)
class WrittenObject:
    """One saved result object and the UIDs it was written with (so nobody has to read it back).

    *kind*: ``seg``, ``sr``, ``sc``, ``pdf``, ``gsps``."""

    kind: str
    path: Path
    sop_instance_uid: str
    sop_class_uid: str = ""
    series_instance_uid: str = ""
