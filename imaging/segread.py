"""Read a DICOM SEG (ours or anyone's) into per-segment masks on the grid of a source :class:`Volume`.

Frames are placed by their Plane Position (Patient) in the volume's frame of
reference, not by frame order, so a SEG with omitted empty frames, frames in
any order, or frames of a sub-region lands on the right voxels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import GeometryError, ReadError
from imaging.pixels import decode_dataset
from imaging.results import Code
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

_TOLERANCE = 1e-3  # direction cosines; and voxel index units for positions


@dataclass(frozen=True, eq=False)
class SegmentMask:
    """One segment of a SEG on the volume grid: its number, label, property type and (k, r, c) mask."""

    number: int
    label: str
    property_type: Code | None
    mask: np.ndarray = field(repr=False)


def _item(ds: Dataset, frame: Dataset, keyword: str) -> Dataset:
    if keyword in frame:
        return frame[keyword].value[0]  # type: ignore[no-any-return]
    shared = ds.SharedFunctionalGroupsSequence[0]
    if keyword in shared:
        return shared[keyword].value[0]  # type: ignore[no-any-return]
    raise ReadError(f"SEG {ds.get('SOPInstanceUID', '?')}: no {keyword} for a frame")


def _check_plane(ds: Dataset, volume: Volume, what: str) -> None:
    shared = ds.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" not in shared or "PixelMeasuresSequence" not in shared:
        return  # per-frame values: positions are checked frame by frame
    iop = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    row_dir = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    col_dir = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
    if np.max(np.abs(iop - np.concatenate([row_dir, col_dir]))) > _TOLERANCE:
        raise GeometryError(f"{what}: orientation {iop.round(4).tolist()} differs from the volume's; "
                            "reading a SEG of another plane needs resampling, which is not done")
    if abs(spacing[0] - volume.spacing_mm[1]) > 1e-3 or abs(spacing[1] - volume.spacing_mm[2]) > 1e-3:
        raise GeometryError(f"{what}: pixel spacing {spacing} differs from the volume's {volume.spacing_mm[1:]}")


def _frames(ds: Dataset, what: str) -> np.ndarray:
    frames = decode_dataset(ds, what=what).reshape(int(ds.get("NumberOfFrames", 1)), int(ds.Rows), int(ds.Columns))
    if str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL":
        return frames.astype(np.float32) / float(ds.MaximumFractionalValue) >= 0.5
    return frames > 0


def read_seg(seg: Path | Dataset, volume: Volume) -> list[SegmentMask]:
    """The segments of *seg* as boolean masks of *volume*'s shape (frames placed by position).

    Raises:
        ReadError: not a SEG, or a frame without position or segment number.
        GeometryError: another frame of reference, orientation or pixel spacing than the volume, or a
            frame that does not fall on a slice of the volume (more than 1e-3 voxel off).
    """
    try:
        ds = dcmread(seg) if isinstance(seg, (str, Path)) else seg
    except (InvalidDicomError, OSError) as exc:
        raise ReadError(f"{seg}: cannot read SEG: {exc}") from exc
    what = f"SEG {ds.get('SOPInstanceUID', '?')}"
    if str(ds.get("Modality", "")) != "SEG" or "SegmentSequence" not in ds:
        raise ReadError(f"{what}: not a Segmentation (Modality {ds.get('Modality', '?')})")
    if volume.frame_of_reference_uid and ds.get("FrameOfReferenceUID", volume.frame_of_reference_uid) != \
            volume.frame_of_reference_uid:
        raise GeometryError(f"{what}: frame of reference {ds.FrameOfReferenceUID} is not the volume's "
                            f"{volume.frame_of_reference_uid}")
    _check_plane(ds, volume, what)
    frames = _frames(ds, what)
    masks = {int(s.SegmentNumber): np.zeros(volume.shape, dtype=bool) for s in ds.SegmentSequence}
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(_item(ds, item, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        position = [float(v) for v in _item(ds, item, "PlanePositionSequence").ImagePositionPatient]
        k, r0, c0 = volume.lps_to_index(np.array([position]))[0]
        index = np.round([k, r0, c0]).astype(int)
        if np.max(np.abs(index - [k, r0, c0])) > _TOLERANCE or not 0 <= index[0] < volume.shape[0]:
            raise GeometryError(f"{what}: frame {i + 1} at {position} is not on a slice of the volume "
                                f"(index {np.round([k, r0, c0], 3).tolist()})")
        _paste(masks[number][index[0]], frames[i], int(index[1]), int(index[2]))
    out = []
    for s in ds.SegmentSequence:
        code = s.SegmentedPropertyTypeCodeSequence[0] if "SegmentedPropertyTypeCodeSequence" in s else None
        out.append(SegmentMask(int(s.SegmentNumber), str(s.get("SegmentLabel", "")),
                               Code(code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) if code else None,
                               masks[int(s.SegmentNumber)]))
    LOGGER.debug("%s: %d segments read onto series %s", what, len(out), volume.series_uid)
    return out


def _paste(target: np.ndarray, frame: np.ndarray, r0: int, c0: int) -> None:
    """OR *frame* into *target* with its top-left pixel at (r0, c0), clipped to the target."""
    rows, cols = target.shape
    top, left = max(r0, 0), max(c0, 0)
    bottom, right = min(r0 + frame.shape[0], rows), min(c0 + frame.shape[1], cols)
    if bottom > top and right > left:
        target[top:bottom, left:right] |= frame[top - r0:bottom - r0, left - c0:right - c0]
