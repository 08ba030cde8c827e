"""Parse and check a received instance before it is kept.

Everything here works on the encoded bytes the peer sent, read from a file (the SCP receives a data
set into a file, never whole into memory): :func:`pacs_bridge.encoding.walk` checks that every
element parses in the declared transfer syntax (a Deflated data set is inflated first), then the
attributes before the Pixel Data are read with pydicom. The pixel data is never decoded (that happens
later, in :mod:`imaging`); its length is checked against the image attributes.
"""
from __future__ import annotations

import math
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from pacs_bridge.encoding import PIXEL_DATA, PixelDataLayout, walk
from pacs_bridge.errors import InvalidInstance
from pacs_bridge.status import StoreStatus
from pacs_bridge.uids import validate_uid

#: Values longer than this are skipped (not read into memory) while reading the attributes.
_DEFER_BYTES = 64 * 1024
_INFLATE_CHUNK = 1 << 20
#: The attributes read (the others were walked over by pacs_bridge.encoding); a third faster than all.
_READ_TAGS: list[BaseTag | int] = [Tag(k) for k in (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "Rows", "Columns",
    "SamplesPerPixel", "BitsAllocated", "NumberOfFrames", "PhotometricInterpretation",
    "AccessionNumber", "StudyDescription", "SpecificCharacterSet")]
#: pydicom's errors on malformed values (no value reaches a reason: only the exception type).
_READ_ERRORS = (InvalidDicomError, ValueError, KeyError, EOFError, OSError, TypeError, AttributeError,
                IndexError, struct.error, UnicodeError, OverflowError)


@dataclass(frozen=True)
class InstanceInfo:
    """The identifying attributes of one received instance."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    transfer_syntax_uid: str
    #: Study labels a signed-in console user sees (patient data: kept out of repr, logs, errors and audit).
    accession_number: str = field(default="", repr=False)
    study_description: str = field(default="", repr=False)


def inspect_stream(fp: BinaryIO, start: int, transfer_syntax: str, max_bytes: int) -> InstanceInfo:
    """Check the data set in ``fp[start:]`` (encoded in *transfer_syntax*) and return what identifies it.

    *max_bytes* bounds an inflated Deflated data set (0: no bound).

    Raises:
        InvalidInstance: with the status and a reason naming the attribute and rule: CANNOT_UNDERSTAND
            when the bytes do not parse in the transfer syntax, MISSING_UID / INVALID_UID,
            DATASET_MISMATCH when the image attributes and the Pixel Data disagree, OUT_OF_RESOURCES
            when a Deflated data set inflates past *max_bytes*.
    """
    tsyntax = UID(transfer_syntax)
    if tsyntax.is_deflated:
        with tempfile.SpooledTemporaryFile(max_size=16 * 2**20) as inflated:
            _inflate(fp, start, inflated, max_bytes)
            return _inspect(inflated, 0, tsyntax)
    return _inspect(fp, start, tsyntax)


def parse_instance(dataset_bytes: bytes, transfer_syntax: str, max_bytes: int = 0) -> InstanceInfo:
    """:func:`inspect_stream` on bytes in memory."""
    return inspect_stream(BytesIO(dataset_bytes), 0, transfer_syntax, max_bytes)


def _inflate(src: BinaryIO, start: int, dst: BinaryIO, max_bytes: int) -> None:
    """Inflate the raw deflate stream in ``src[start:]`` into *dst* (PS3.5 A.5), at most *max_bytes*."""
    src.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while chunk := src.read(_INFLATE_CHUNK):
            data = inflater.decompress(chunk, _INFLATE_CHUNK)  # bounded output: a small bomb stays small
            while True:
                total += len(data)
                if max_bytes and total > max_bytes:
                    raise InvalidInstance(
                        StoreStatus.OUT_OF_RESOURCES,
                        f"Deflated data set inflates past the maximum data set size ({max_bytes} bytes)",
                    )
                dst.write(data)
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK)
        dst.write(inflater.flush())
    except zlib.error as exc:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND,
                              f"Deflated data set cannot be inflated ({type(exc).__name__})") from exc
    if not inflater.eof:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND, "Deflated data set: the deflate stream is cut off")
    # Bytes after the end of the stream (a gzip-style trailer some writers add) are left as they are.


def _stop_at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) == PIXEL_DATA


def _inspect(fp: BinaryIO, start: int, tsyntax: UID) -> InstanceInfo:
    end = fp.seek(0, 2)
    implicit = tsyntax.is_implicit_VR and not tsyntax.is_deflated
    little = tsyntax.is_little_endian
    layout = walk(fp, start, end, implicit_vr=implicit, little_endian=little)
    fp.seek(start)
    try:
        ds = read_dataset(fp, implicit, little, stop_when=_stop_at_pixels, defer_size=_DEFER_BYTES,
                          specific_tags=_READ_TAGS)
        sop_class = ds.get("SOPClassUID")
        sop_uid = ds.get("SOPInstanceUID")
        study_uid = ds.get("StudyInstanceUID")
        series_uid = ds.get("SeriesInstanceUID")
        modality = str(ds.get("Modality", "") or "")
    except _READ_ERRORS as exc:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND,
                              f"data set cannot be read ({type(exc).__name__})") from exc
    info = InstanceInfo(
        sop_class_uid=validate_uid(sop_class, "SOPClassUID"),
        sop_instance_uid=validate_uid(sop_uid, "SOPInstanceUID"),
        study_instance_uid=validate_uid(study_uid, "StudyInstanceUID"),
        series_instance_uid=validate_uid(series_uid, "SeriesInstanceUID"),
        modality=modality if modality.isascii() and modality.isprintable() else "",
        transfer_syntax_uid=str(tsyntax),
        accession_number=study_label(ds, "AccessionNumber"),
        study_description=study_label(ds, "StudyDescription"),
    )
    if layout is not None:
        check_pixel_data(ds, tsyntax, layout)
    return info


def study_label(ds: Dataset, keyword: str) -> str:
    """A study label as text ('' when absent or unreadable: a label never refuses an instance)."""
    try:
        value = ds.get(keyword)
        text = "" if value is None else str(value).strip()
    except _READ_ERRORS:
        return ""
    return text[:64] if text.isprintable() else ""


def _image_number(ds: Dataset, keyword: str, default: int | None = None) -> int:
    """An Image Pixel module number (US or IS); a number, never a patient value, may be named."""
    try:
        value = ds.get(keyword)
    except _READ_ERRORS as exc:
        raise InvalidInstance(StoreStatus.DATASET_MISMATCH,
                              f"{keyword} cannot be read ({type(exc).__name__})") from exc
    if value is None or value == "":
        if default is None:
            raise InvalidInstance(StoreStatus.DATASET_MISMATCH,
                                  f"Pixel Data present but {keyword} is missing")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(StoreStatus.DATASET_MISMATCH,
                              f"{keyword} is not a number") from exc


def check_pixel_data(ds: Dataset, tsyntax: UID, layout: PixelDataLayout) -> None:
    """Check the Image Pixel attributes and that native Pixel Data is long enough for them.

    Native length = Rows × Columns × SamplesPerPixel × NumberOfFrames × BitsAllocated / 8 (bits
    packed for BitsAllocated 1), two thirds of it for YBR_FULL_422 (PS3.3 C.7.6.3.1.2); planar
    configuration and palettes do not change it. Encapsulated Pixel Data must be on an encapsulated
    transfer syntax and hold the Basic Offset Table item and at least one fragment; its length is
    only known after decoding.

    Raises:
        InvalidInstance: DATASET_MISMATCH naming the attribute and rule; CANNOT_UNDERSTAND when the
            Pixel Data's encoding (native or encapsulated) is not the transfer syntax's.
    """
    if tsyntax.is_encapsulated and layout.length is not None:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND,
                              "native Pixel Data on an encapsulated transfer syntax")
    if not tsyntax.is_encapsulated and layout.length is None:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND,
                              "encapsulated Pixel Data on a native transfer syntax")
    rows = _image_number(ds, "Rows")
    cols = _image_number(ds, "Columns")
    samples = _image_number(ds, "SamplesPerPixel", default=1)
    bits = _image_number(ds, "BitsAllocated")
    frames = _image_number(ds, "NumberOfFrames", default=1) or 1  # 0 written for 1 by some
    problems = [f"{k} {v} is below 1" for k, v in
                (("Rows", rows), ("Columns", cols), ("SamplesPerPixel", samples), ("NumberOfFrames", frames))
                if v < 1]
    if not (bits == 1 or (bits % 8 == 0 and 8 <= bits <= 64)):
        problems.append(f"BitsAllocated {bits} is neither 1 nor a multiple of 8 up to 64")
    if problems:
        raise InvalidInstance(StoreStatus.DATASET_MISMATCH, '; '.join(problems))
    if layout.length is None:
        if layout.fragments < 2:
            raise InvalidInstance(StoreStatus.DATASET_MISMATCH,
                                  "encapsulated Pixel Data holds no fragment")
        return
    pixels = rows * cols * samples * frames
    expected = math.ceil(pixels / 8) if bits == 1 else pixels * (bits // 8)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if photometric == "YBR_FULL_422":
        expected = expected // 3 * 2
    if layout.length < expected:
        raise InvalidInstance(
            StoreStatus.DATASET_MISMATCH,
            f"Pixel Data is {layout.length} bytes, the image attributes need {expected}"
            f"{' (YBR_FULL_422)' if photometric == 'YBR_FULL_422' else ''}",
        )
