"""Parse and check a received instance before it is kept.

Everything here works on the encoded bytes the peer sent; the pixel data is
never decoded (that happens later, in :mod:`imaging`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from pacs_bridge.errors import InvalidInstance
from pacs_bridge.status import StoreStatus
from pacs_bridge.uids import validate_uid


@dataclass(frozen=True)
class InstanceInfo:
    """The identifying attributes of one received instance."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    transfer_syntax_uid: str


def parse_instance(dataset_bytes: bytes, transfer_syntax: str) -> tuple[InstanceInfo, Dataset]:
    """Decode *dataset_bytes* (encoded in *transfer_syntax*) and check it.

    Raises:
        InvalidInstance: with the status and a reason naming the attribute and rule.
    """
    tsyntax = UID(transfer_syntax)
    try:
        ds = _read_raw(dataset_bytes, tsyntax)
        sop_class = ds.get("SOPClassUID")
        sop_uid = ds.get("SOPInstanceUID")
        study_uid = ds.get("StudyInstanceUID")
        series_uid = ds.get("SeriesInstanceUID")
        modality = str(ds.get("Modality", "") or "")
    except (InvalidDicomError, ValueError, KeyError, EOFError, OSError, TypeError, AttributeError) as exc:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND, f"data set cannot be parsed: {exc}") from exc
    info = InstanceInfo(
        sop_class_uid=validate_uid(sop_class, "SOPClassUID"),
        sop_instance_uid=validate_uid(sop_uid, "SOPInstanceUID"),
        study_instance_uid=validate_uid(study_uid, "StudyInstanceUID"),
        series_instance_uid=validate_uid(series_uid, "SeriesInstanceUID"),
        modality=modality,
        transfer_syntax_uid=str(tsyntax),
    )
    check_pixel_data_length(ds, tsyntax, info.sop_instance_uid)
    return info, ds


def _read_raw(dataset_bytes: bytes, tsyntax: UID) -> Dataset:
    """Read a bare data set (no preamble, no meta) in a known transfer syntax."""
    ds = read_dataset(
        BytesIO(dataset_bytes),
        is_implicit_VR=tsyntax.is_implicit_VR,
        is_little_endian=tsyntax.is_little_endian,
    )
    if len(ds) == 0:
        raise ValueError("no data elements")
    # Touch the attributes we need so that a malformed element raises here.
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
        ds.get(keyword)
    return ds


def check_pixel_data_length(ds: Dataset, tsyntax: UID, sop_uid: str) -> None:
    """Refuse native pixel data shorter than Rows × Columns × Samples × Frames × bytes.

    Encapsulated (compressed) pixel data is not checked here: its length is
    only known after decoding.

    Raises:
        InvalidInstance: DATASET_MISMATCH with both lengths in the reason.
    """
    if "PixelData" not in ds or tsyntax.is_encapsulated:
        return
    try:
        rows = int(ds.Rows)
        cols = int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInstance(
            StoreStatus.DATASET_MISMATCH,
            f"instance {sop_uid}: pixel data present but image attributes are missing or invalid ({exc})",
        ) from exc
    if bits == 1:
        expected = math.ceil(rows * cols * samples * frames / 8)
    else:
        expected = rows * cols * samples * frames * math.ceil(bits / 8)
    actual = len(ds["PixelData"].value or b"")
    if actual < expected:
        raise InvalidInstance(
            StoreStatus.DATASET_MISMATCH,
            f"instance {sop_uid}: pixel data is {actual} bytes, "
            f"Rows×Columns×Samples×Frames×bytes = {expected}",
        )
