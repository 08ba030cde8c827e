"""Per-frame header facts from single-frame and enhanced multi-frame instances.

A :class:`SliceHeader` describes one 2D frame: where it came from, where it
sits in the patient, its pixel grid and its rescale. Single-frame CT/MR give
one per file; enhanced CT/MR give one per frame from the functional groups
(per-frame first, then shared). Nothing here decodes pixel data.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from imaging.errors import ReadError
from imaging.legacy import normalise_legacy_values
from imaging.provenance import PATIENT_STUDY_KEYWORDS

LOGGER = logging.getLogger(__name__)

#: Attributes that tell apart slices at the same position, in the order they are tried for splitting.
TEMPORAL_KEYWORDS: tuple[str, ...] = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "TriggerTime",
    "NominalCardiacTriggerDelayTime",
    "NominalPercentageOfCardiacPhase",
    "EchoNumbers",
    "EffectiveEchoTime",
    "AcquisitionNumber",
)
_SINGLE_FRAME_TEMPORAL = ("TemporalPositionIdentifier", "TriggerTime", "NominalPercentageOfCardiacPhase",
                          "EchoNumbers", "AcquisitionNumber")
_NATIVE_SYNTAXES = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


@dataclass(frozen=True, eq=False)
class SourceFrame:
    """Where one 2D slice came from. *frame_number* is 1-based for multi-frame instances, else None."""

    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None
    path: Path | None
    header: Dataset = field(repr=False)


@dataclass(frozen=True)
class PixelLayout:
    """How the stored pixel values of an instance are laid out.

    *native_offset*: byte offset of uncompressed little-endian pixel data in the
    file when it can be read directly (single-frame only), else None.
    """

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    native_offset: int | None = None

    @property
    def dtype(self) -> str:
        """numpy dtype of one stored sample (little endian)."""
        return f"<{'i' if self.signed else 'u'}{self.bits_allocated // 8}"


@dataclass(frozen=True, eq=False)
class SliceHeader:
    """One 2D frame: origin (mm, LPS), orientation cosines, Pixel Spacing (row, column) in mm, rescale."""

    source: SourceFrame
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    thickness_mm: float | None
    slope: float
    intercept: float
    layout: PixelLayout
    temporal: Mapping[str, float] = field(default_factory=dict)


def read_header(path: Path) -> tuple[Dataset, PixelLayout]:
    """Read the header of *path* (no pixel data) and where its pixel data lies.

    Raises:
        ReadError: not DICOM, or no pixel data description (Rows/Columns/Bits Allocated).
    """
    try:
        with open(path, "rb") as fp:
            ds = dcmread(fp, stop_before_pixels=True)
            normalise_legacy_values(ds, PATIENT_STUDY_KEYWORDS)  # what every result copies
            layout = layout_of(ds, what=str(path))
            offset = _native_offset(ds, layout, fp)
    except (OSError, ValueError, EOFError, InvalidDicomError) as exc:
        raise ReadError(f"{path}: cannot read DICOM header: {exc}") from exc
    return ds, replace(layout, native_offset=offset) if offset is not None else layout


def read_any_header(path: Path) -> tuple[Dataset, PixelLayout | None]:
    """Read the header of any instance (no pixel data) and, for an image, where its pixel data lies.

    The layout is None for an instance that is not an image, or whose pixel description does not decode
    (:func:`read_header` then says why, when an image is needed). Nothing is normalised.

    Raises:
        whatever :func:`pydicom.dcmread` and the file system raise (the caller decides what a failure means).
    """
    with open(path, "rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        try:
            layout = layout_of(ds, what=str(path))
            offset = _native_offset(ds, layout, fp)
        except (ReadError, ValueError, TypeError, KeyError, OSError) as exc:
            LOGGER.debug("%s: no pixel layout (%s)", path, type(exc).__name__)
            return ds, None
    return ds, replace(layout, native_offset=offset) if offset is not None else layout


def _uint(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    """An US/UL/IS attribute as int, decoded from the raw little-endian bytes where possible (fast path)."""
    element = ds.get_item(keyword)
    if element is None:
        return default
    value = element.value
    if isinstance(value, bytes) and element.VR in ("US", "UL") and len(value) in (2, 4) and ds.is_little_endian:
        return int.from_bytes(value, "little")
    value = ds[keyword].value
    return default if value is None or value == "" else int(value)


def layout_of(ds: Dataset, native_offset: int | None = None, *, what: str = "instance") -> PixelLayout:
    """The :class:`PixelLayout` of *ds*.

    Raises:
        ReadError: Rows, Columns or Bits Allocated missing, naming *what*.
    """
    rows, columns, bits = _uint(ds, "Rows"), _uint(ds, "Columns"), _uint(ds, "BitsAllocated")
    if rows is None or columns is None or bits is None:
        raise ReadError(f"{what}: not an image (no Rows, Columns or Bits Allocated)")
    photometric = ds.get_item("PhotometricInterpretation")
    return PixelLayout(
        rows=rows, columns=columns, samples=_uint(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=bits, bits_stored=_uint(ds, "BitsStored", bits) or bits,
        signed=_uint(ds, "PixelRepresentation", 0) == 1,
        photometric=str(ds.PhotometricInterpretation) if photometric is not None else "MONOCHROME2",
        native_offset=native_offset,
    )


def _native_offset(ds: Dataset, layout: PixelLayout, fp: Any) -> int | None:
    """Offset of the value of uncompressed single-frame little-endian Pixel Data, else None."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax not in _NATIVE_SYNTAXES or layout.bits_allocated not in (8, 16, 32) or layout.samples != 1:
        return None
    frames = _numbers(ds, "NumberOfFrames")
    if frames is not None and frames[0] != 1:
        return None
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8 or head[:4] != b"\xe0\x7f\x10\x00":
        return None
    if syntax == ExplicitVRLittleEndian:
        length, value_start = int.from_bytes(head[8:12], "little"), start + 12
    else:
        length, value_start = int.from_bytes(head[4:8], "little"), start + 8
    expected = layout.rows * layout.columns * layout.bits_allocated // 8
    if length == 0xFFFFFFFF or length < expected:
        return None
    return value_start


def _numbers(ds: Dataset, keyword: str) -> tuple[float, ...] | None:
    """Values of a DS/IS attribute parsed straight from the raw text (skips pydicom's per-value objects,
    a third of the header time of a large series); None when absent, empty or not numeric text."""
    element = ds.get_item(keyword)
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes) and element.VR in (None, "DS", "IS"):  # None: implicit VR, text per dictionary
        text = value.decode("ascii", "replace").strip(" \x00")
        try:
            return tuple(float(v) for v in text.split("\\")) if text else None
        except ValueError:
            return None
    if isinstance(value, bytes):
        value = ds[keyword].value  # a binary VR: let pydicom convert it
    if value is None or value == "":
        return None
    try:
        return tuple(float(v) for v in value) if isinstance(value, (list, tuple, MultiValue)) else (float(value),)
    except (TypeError, ValueError):
        return None


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _vector(value: Any) -> tuple[float, ...] | None:
    if value is None or len(value) == 0:
        return None
    return tuple(float(v) for v in value)


def slice_headers(ds: Dataset, layout: PixelLayout, path: Path | None = None) -> list[SliceHeader]:
    """One :class:`SliceHeader` per frame of *ds* (single-frame or enhanced multi-frame)."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_headers(ds, layout, path)
    source = SourceFrame(str(ds.SOPClassUID), str(ds.SOPInstanceUID), None, path, ds)
    spacing = _numbers(ds, "PixelSpacing")
    temporal = {}
    for keyword in _SINGLE_FRAME_TEMPORAL:
        values = _numbers(ds, keyword)
        if values:
            temporal[keyword] = values[0]
    thickness, slope, intercept = (_numbers(ds, k) for k in ("SliceThickness", "RescaleSlope", "RescaleIntercept"))
    return [SliceHeader(
        source=source,
        position=_numbers(ds, "ImagePositionPatient"),  # type: ignore[arg-type]
        orientation=_numbers(ds, "ImageOrientationPatient"),
        pixel_spacing=spacing[:2] if spacing else None,  # type: ignore[arg-type]
        thickness_mm=thickness[0] if thickness else None,
        slope=slope[0] if slope and slope[0] != 0 else 1.0,
        intercept=intercept[0] if intercept else 0.0,
        layout=layout,
        temporal=temporal,
    )]


def _group(ds: Dataset, frame_item: Dataset, keyword: str) -> Dataset | None:
    """First item of functional group *keyword*: per-frame, else shared, else None."""
    if keyword in frame_item and len(frame_item[keyword].value):
        return frame_item[keyword].value[0]  # type: ignore[no-any-return]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and keyword in shared[0] and len(shared[0][keyword].value):
        return shared[0][keyword].value[0]  # type: ignore[no-any-return]
    return None


def _enhanced_headers(ds: Dataset, layout: PixelLayout, path: Path | None) -> list[SliceHeader]:
    """Slice headers of an enhanced multi-frame instance from its functional groups."""
    out = []
    for index, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        position = _group(ds, item, "PlanePositionSequence")
        orientation = _group(ds, item, "PlaneOrientationSequence")
        measures = _group(ds, item, "PixelMeasuresSequence")
        rescale = _group(ds, item, "PixelValueTransformationSequence")
        content = _group(ds, item, "FrameContentSequence")
        cardiac = _group(ds, item, "CardiacSynchronizationSequence")
        echo = _group(ds, item, "MREchoSequence")
        temporal: dict[str, float] = {}
        converted = _group(ds, item, "UnassignedPerFrameConvertedAttributesSequence")  # legacy converted
        for keyword in _SINGLE_FRAME_TEMPORAL:
            value = _float(converted.get(keyword)) if converted is not None else None
            if value is not None:
                temporal[keyword] = value
        for group, keyword in ((content, "TemporalPositionIndex"), (cardiac, "NominalCardiacTriggerDelayTime"),
                               (cardiac, "NominalPercentageOfCardiacPhase"), (echo, "EffectiveEchoTime")):
            value = _float(group.get(keyword)) if group is not None else None
            if value is not None:
                temporal[keyword] = value
        spacing = _vector(measures.get("PixelSpacing")) if measures is not None else None
        out.append(SliceHeader(
            source=SourceFrame(str(ds.SOPClassUID), str(ds.SOPInstanceUID), index + 1, path, ds),
            position=_vector(position.get("ImagePositionPatient")) if position is not None else None,  # type: ignore[arg-type]
            orientation=_vector(orientation.get("ImageOrientationPatient")) if orientation is not None else None,
            pixel_spacing=spacing[:2] if spacing else None,  # type: ignore[arg-type]
            thickness_mm=_float(measures.get("SliceThickness")) if measures is not None else None,
            slope=(_float(rescale.get("RescaleSlope"), 1.0) or 1.0) if rescale is not None else 1.0,
            intercept=(_float(rescale.get("RescaleIntercept"), 0.0) or 0.0) if rescale is not None else 0.0,
            layout=layout,
            temporal=temporal,
        ))
    LOGGER.debug("instance %s: %d frames from functional groups", ds.SOPInstanceUID, len(out))
    return out


def require_geometry(header: SliceHeader) -> tuple[tuple[float, float, float], tuple[float, ...], tuple[float, float]]:
    """(position, orientation, pixel spacing) of *header*.

    Raises:
        ReadError: naming the instance, frame and the missing attribute.
    """
    missing = [name for name, value in (("Image Position (Patient)", header.position),
                                        ("Image Orientation (Patient)", header.orientation),
                                        ("Pixel Spacing", header.pixel_spacing)) if value is None]
    if missing:
        frame = f" frame {header.source.frame_number}" if header.source.frame_number else ""
        raise ReadError(f"instance {header.source.sop_instance_uid}{frame}: no {', '.join(missing)}; "
                        "not a cross-sectional image (use load_mammogram for projection images)")
    return header.position, header.orientation, header.pixel_spacing  # type: ignore[return-value]
