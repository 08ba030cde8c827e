"""The one value every dataset reader gives: a :class:`Case` (image, labels, points, image-level labels).

A case carries no machine path: its sources are named relative to the dataset folder, with their SHA-256,
so a run or a model card can list what it learned from without saying where the files lay.

Coordinates are LPS millimetres (DICOM patient coordinates, the frame of :class:`imaging.volume.Volume`).
A 2D image (mammography) is a Volume of one slice whose affine maps (0, row, column) to millimetres on the
detector: (0, 0, 0) at the centre of the first pixel, rows along +y, columns along +x; it is no patient frame.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from imaging.volume import Volume


class CaseError(Exception):
    """A case that cannot be used (the reason is shown in the reader's skipped list)."""


class NoduleType(str, enum.Enum):
    SOLID = "solid"
    PART_SOLID = "part-solid"
    GROUND_GLASS = "ground-glass"


#: Coronary arteries a calcified lesion may belong to (ORCAScore counts the left main as LAD).
VESSELS = ("LM", "LAD", "LCX", "RCA")


@dataclass(frozen=True)
class SourceFile:
    """A file a case was read from: its path relative to the dataset folder (POSIX) and its SHA-256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Nodule:
    """A lung nodule: centre (LPS mm), diameter (mm; mean of long and short axis where the source has both)
    and type (None where the source does not say)."""

    centre_lps_mm: tuple[float, float, float]
    diameter_mm: float
    nodule_type: NoduleType | None = None


@dataclass(frozen=True)
class CalciumLesion:
    """A calcified coronary lesion: its vessel (one of :data:`VESSELS`), centre (LPS mm), and where the
    source gives them its volume (mm³) and Agatston score."""

    vessel: str
    centre_lps_mm: tuple[float, float, float]
    volume_mm3: float | None = None
    agatston: float | None = None

    def __post_init__(self) -> None:
        if self.vessel not in VESSELS:
            raise CaseError(f"calcified lesion: vessel {self.vessel!r} is not one of {', '.join(VESSELS)}")


@dataclass(frozen=True)
class Box:
    """A finding's box on a 2D image, in pixel indices (row/column of the first and last pixel covered,
    half-open: ``[row0, row1) x [col0, col1)``), with its category and BI-RADS assessment where given."""

    row0: float
    col0: float
    row1: float
    col1: float
    category: str
    assessment: str | None = None


@dataclass(frozen=True)
class ImageLabels:
    """Image-level labels. *density*: BI-RADS density ``a``-``d``; *assessment*: BI-RADS ``0``-``6`` (``4A``..);
    *laterality* ``L``/``R`` and *view* (``CC``, ``MLO`` ...) of a mammogram; *phase* ``ED``/``ES`` of a cardiac
    frame; *extra*: other published values as (name, text) pairs (e.g. ``("height_cm", "184.0")``)."""

    density: str | None = None
    assessment: str | None = None
    laterality: str | None = None
    view: str | None = None
    phase: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.density is not None and self.density not in ("a", "b", "c", "d"):
            raise CaseError(f"density {self.density!r}: expected a BI-RADS category a-d")
        if self.laterality is not None and self.laterality not in ("L", "R"):
            raise CaseError(f"laterality {self.laterality!r}: expected L or R")
        if self.phase is not None and self.phase not in ("ED", "ES"):
            raise CaseError(f"phase {self.phase!r}: expected ED or ES")


@dataclass(frozen=True, eq=False)
class LabelMap:
    """Integer labels on the image grid (same shape as the image voxels), 0 = background, with a name for
    every other value used. *may_be_empty*: an all-background map is a true label (e.g. a calcium score of 0),
    not a missing one."""

    voxels: np.ndarray = field(repr=False)
    names: Mapping[int, str]
    may_be_empty: bool = False

    def __post_init__(self) -> None:
        if not np.issubdtype(self.voxels.dtype, np.integer):
            raise CaseError(f"label map of dtype {self.voxels.dtype}: expected integers")
        used = {int(v) for v in np.unique(self.voxels[self.voxels != 0])}  # labelled voxels are few: fast
        unnamed = sorted(used - set(self.names))
        if unnamed:
            raise CaseError(f"label values {unnamed} have no name (named: {sorted(self.names)})")


@dataclass(frozen=True, eq=False)
class Case:
    """One training or evaluation case.

    Raises:
        CaseError: a label map of another shape than the image, an empty label map, or a point or box
            outside the image.
    """

    case_id: str
    image: Volume
    label: LabelMap | None = None
    nodules: tuple[Nodule, ...] = ()
    calcium: tuple[CalciumLesion, ...] = ()
    boxes: tuple[Box, ...] = ()
    image_labels: ImageLabels = ImageLabels()
    sources: tuple[SourceFile, ...] = ()

    def __post_init__(self) -> None:
        if self.label is not None:
            if self.label.voxels.shape != self.image.shape:
                raise CaseError(f"label grid {self.label.voxels.shape} differs from the image's {self.image.shape}")
            if not self.label.may_be_empty and not np.any(self.label.voxels):
                raise CaseError("label map is empty (no labelled voxel)")
        for what, point in [("nodule", n.centre_lps_mm) for n in self.nodules] + \
                           [(f"{c.vessel} lesion", c.centre_lps_mm) for c in self.calcium]:
            index = self.image.lps_to_index(np.array([point], dtype=float))[0]
            if np.any(index < -0.5) or np.any(index > np.array(self.image.shape) - 0.5):
                raise CaseError(f"{what} at {np.round(point, 1).tolist()} mm is outside the image "
                                f"(index {np.round(index, 1).tolist()} of {self.image.shape})")
        _, rows, cols = self.image.shape
        for box in self.boxes:
            if not (0 <= box.row0 < box.row1 <= rows and 0 <= box.col0 < box.col1 <= cols):
                raise CaseError(f"{box.category} box rows {box.row0:g}-{box.row1:g}, columns {box.col0:g}-"
                                f"{box.col1:g} is empty or outside the {rows}x{cols} image")


@dataclass(frozen=True)
class Skipped:
    """A case left out, and why."""

    case_id: str
    reason: str


@dataclass(frozen=True)
class ReadResult:
    """What :func:`training.readers.read_dataset` read: the usable cases and the skipped ones with reasons."""

    cases: tuple[Case, ...]
    skipped: tuple[Skipped, ...]
