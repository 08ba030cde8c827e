"""Helpers shared by the readers: per-case error capture, source hashes, NIfTI frames, 2D DICOM images, CSV."""
from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from imaging.errors import ImagingError
from imaging.nifti import from_nifti
from imaging.pixels import decode_dataset
from imaging.volume import Volume
from training.readers.case import Case, CaseError, LabelMap, Skipped, SourceFile

LOGGER = logging.getLogger(__name__)


class DatasetError(Exception):
    """A dataset folder that cannot be read at all (layout not found, or no usable case)."""


#: Errors that make one case unusable; anything else is a bug and propagates.
CASE_ERRORS = (CaseError, ImagingError, OSError, ValueError, KeyError, IndexError, EOFError, InvalidDicomError)


def attempt(case_id: str, build: Callable[..., Case], *args: Any) -> Case | Skipped:
    """The case that *build* makes of *args*, or a :class:`Skipped` naming the case and the error's message."""
    try:
        return build(*args)
    except CASE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        LOGGER.info("case %s skipped: %s", case_id, reason)
        return Skipped(case_id, reason)


def sources(root: Path, paths: Iterable[Path]) -> tuple[SourceFile, ...]:
    """:class:`SourceFile` values (path relative to *root*, SHA-256) of *paths*, sorted by name."""
    out = []
    for path in sorted(set(paths)):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out.append(SourceFile(path.relative_to(root).as_posix(), digest.hexdigest()))
    return tuple(out)


def without_sources(volume: Volume) -> Volume:
    """The volume without its per-slice source frames (they hold machine paths)."""
    return replace(volume, sources=())


def nifti_frame(path: Path, frame: int | None = None) -> Volume:
    """A 3-D volume from a NIfTI file, or frame *frame* (0-based, 4th axis) of a 4-D one.

    Raises:
        CaseError: not 3-D (or 4-D when a frame is asked), or the frame does not exist.
    """
    image = nib.load(str(path))
    if not isinstance(image, nib.Nifti1Image):
        raise CaseError(f"{path.name}: not a NIfTI-1/2 image")
    shape = image.shape
    if frame is None:
        if len(shape) != 3:
            raise CaseError(f"{path.name}: {len(shape)}-D image of shape {shape}; expected 3-D")
        return from_nifti(image)
    if len(shape) != 4:
        raise CaseError(f"{path.name}: {len(shape)}-D image; expected 4-D (frames on the 4th axis)")
    if not 0 <= frame < shape[3]:
        raise CaseError(f"{path.name}: frame {frame} (0-based) not among its {shape[3]} frames")
    data = np.asanyarray(image.dataobj[..., frame])
    return from_nifti(nib.Nifti1Image(data, image.affine, image.header))


def label_map(image: Volume, label: Volume, names: dict[int, str], what: str) -> LabelMap:
    """Integer labels of *label* (a volume read from a label file) checked against *image*'s grid.

    Raises:
        CaseError: another grid, or values that are not integers.
    """
    if label.shape != image.shape or not np.allclose(label.affine, image.affine, atol=1e-3):
        raise CaseError(f"{what}: label grid {label.shape} does not match the image grid {image.shape} "
                        "(shape or affine)")
    values = np.rint(label.voxels)
    if not np.array_equal(values, label.voxels):
        raise CaseError(f"{what}: label values are not integers")
    return LabelMap(values.astype(np.int16), names)


def image_2d(path: Path) -> tuple[Volume, str]:
    """A 2D DICOM image (mammogram) as a one-slice Volume on the detector grid, and the spacing source.

    Pixel values are the stored values after Rescale Slope/Intercept, MONOCHROME1 inverted so that higher is
    brighter. Spacing: Pixel Spacing, else Imager Pixel Spacing, else 1 mm with source ``"unknown"`` (film
    scans such as CBIS-DDSM carry none).

    Raises:
        CaseError: not DICOM or not one greyscale frame.
    """
    try:
        ds = dcmread(path)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise CaseError(f"{path.name}: cannot read DICOM ({type(exc).__name__})") from exc
    what = f"instance {ds.get('SOPInstanceUID', '?')}"
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise CaseError(f"{what}: expected one greyscale frame")
    stored = decode_dataset(ds, what=what)[0].astype(np.float32)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        stored = float(stored.max()) + float(stored.min()) - stored
    pixels = stored * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    spacing, source = (1.0, 1.0), "unknown"
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if ds.get(keyword):
            spacing, source = (float(ds[keyword].value[0]), float(ds[keyword].value[1])), keyword
            break
    affine = np.array([[0, 0, spacing[1], 0], [0, spacing[0], 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    volume = Volume(voxels=pixels[np.newaxis].astype(np.float32), affine=affine,
                    study_uid=str(ds.get("StudyInstanceUID", "")), series_uid=str(ds.get("SeriesInstanceUID", "")),
                    modality=str(ds.get("Modality", "")))
    return volume, source


def display_labels(path: Path) -> tuple[tuple[str, str], ...]:
    """What the service reads from a 2D image's header beside its pixels, as ``ImageLabels.extra`` pairs (absent
    attributes left out): ``window`` (first VOI window: centre and width, in the units of the stored values after
    rescale), ``photometric`` (Photometric Interpretation), ``patient_orientation`` (its two values joined by a
    backslash) and ``breast_spacing_mm`` (row and column spacing at the breast, :func:`imaging.mammo.spacing_of`).

    Raises:
        CaseError: not DICOM.
    """
    from imaging.mammo import spacing_of

    try:
        ds = dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise CaseError(f"{path.name}: cannot read DICOM ({type(exc).__name__})") from exc
    out = [("photometric", str(ds.get("PhotometricInterpretation", "")))]
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre not in (None, "") and width not in (None, ""):
        first = [float(v[0]) if isinstance(v, MultiValue) else float(v) for v in (centre, width)]
        out.append(("window", f"{first[0]:.6g} {first[1]:.6g}"))
    orientation = [str(v) for v in (ds.get("PatientOrientation") or ())]
    if len(orientation) == 2 and all(orientation):
        out.append(("patient_orientation", "\\".join(orientation)))
    if ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"):
        (row, col), _ = spacing_of(ds)
        out.append(("breast_spacing_mm", f"{row:.6g} {col:.6g}"))
    return tuple(out)


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV file with a header line (UTF-8, BOM tolerated), values stripped.

    Raises:
        DatasetError: the file is missing or has no header.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            if not reader.fieldnames:
                raise DatasetError(f"{path.name}: empty CSV (no header line)")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read ({type(exc).__name__})") from None


def require_columns(rows: list[dict[str, str]], columns: Iterable[str], what: str) -> None:
    """Raises DatasetError when the CSV lacks one of *columns* (the published header)."""
    have = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in have]
    if rows and missing:
        raise DatasetError(f"{what}: missing column(s) {missing} of the published layout")


def collect(items: Iterator[Case | Skipped]) -> tuple[list[Case], list[Skipped]]:
    cases: list[Case] = []
    skipped: list[Skipped] = []
    for item in items:
        (cases if isinstance(item, Case) else skipped).append(item)  # type: ignore[arg-type]
    return cases, skipped
