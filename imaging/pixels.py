"""Pixel data to float32: a direct read for uncompressed single-frame files, pydicom decoders otherwise.

Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE) are decoded by pydicom with the pylibjpeg plugins
(pylibjpeg-libjpeg, -openjpeg, -rle). Multi-frame instances are decoded once
per load and shared by their frames.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.errors import ReadError
from imaging.headers import PixelLayout, SliceHeader

LOGGER = logging.getLogger(__name__)


class DecodedInstances:
    """Decoded stored values per SOP Instance UID, each instance decoded once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def frames(self, header: SliceHeader) -> np.ndarray:
        """Stored values of the instance of *header* as (frames, rows, columns).

        Raises:
            ReadError: no file to read, or pydicom cannot decode it (names the instance and transfer syntax).
        """
        uid = header.source.sop_instance_uid
        with self._lock:
            lock = self._locks.setdefault(uid, threading.Lock())
        with lock:
            if uid not in self._arrays:
                self._arrays[uid] = decode_instance(header)
            return self._arrays[uid]


def decode_instance(header: SliceHeader) -> np.ndarray:
    """Decode every frame of the instance behind *header*; (frames, rows, columns) stored values.

    Raises:
        ReadError: naming the instance and transfer syntax when decoding fails.
    """
    path = header.source.path
    if path is None:
        raise ReadError(f"instance {header.source.sop_instance_uid}: no file to read pixel data from")
    ds = dcmread(path)
    return decode_dataset(ds, what=f"instance {header.source.sop_instance_uid}")


def decode_dataset(ds: Dataset, *, what: str) -> np.ndarray:
    """Stored values of every frame of *ds* (with pixel data) as (frames, rows, columns[, samples]).

    Raises:
        ReadError: naming *what* and the transfer syntax when no decoder can handle it.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID", "?") if hasattr(ds, "file_meta") else "?"
    try:
        array = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise ReadError(f"{what}: cannot decode pixel data ({getattr(syntax, 'name', syntax)}): {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames == 1 and array.ndim == (2 if samples == 1 else 3):
        array = array[np.newaxis]
    return array


def read_native(path: Path, layout: PixelLayout) -> np.ndarray:
    """Stored values of an uncompressed single-frame file, read straight from *layout.native_offset*.

    Raises:
        ReadError: the file is shorter than Rows × Columns × Bits Allocated says.
    """
    raw = np.empty((layout.rows, layout.columns), dtype=layout.dtype)
    with open(path, "rb") as fp:
        fp.seek(int(layout.native_offset or 0))
        got = fp.readinto(memoryview(raw).cast("B"))
    if got != raw.nbytes:
        raise ReadError(f"{path}: pixel data truncated ({got} of {raw.nbytes} bytes)")
    return raw


def fix_bits(raw: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Stored values with the bits above Bits Stored handled, in place: sign-extended from bit
    (Bits Stored − 1) for signed data, masked off for unsigned data (PS3.5 8.1.1)."""
    if layout.bits_stored < layout.bits_allocated:
        shift = layout.bits_allocated - layout.bits_stored
        if layout.signed:
            np.left_shift(raw, shift, out=raw)
            np.right_shift(raw, shift, out=raw)
        else:
            np.bitwise_and(raw, (1 << layout.bits_stored) - 1, out=raw)
    return raw


def rescale_into(raw: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> None:
    """out = raw × slope + intercept, in float32, in place (Rescale Slope/Intercept, PS3.3 C.11.1)."""
    if slope == 1.0 and intercept != 0.0:
        np.add(raw, np.float32(intercept), out=out, casting="unsafe")  # one pass for the usual CT case
        return
    if slope == 1.0:
        np.copyto(out, raw, casting="unsafe")
    else:
        np.multiply(raw, np.float32(slope), out=out, casting="unsafe")
    if intercept != 0.0:
        out += np.float32(intercept)


def fill_slice(header: SliceHeader, out: np.ndarray, decoded: DecodedInstances) -> None:
    """Write the rescaled float32 values of the frame of *header* into *out* (rows, columns).

    Raises:
        ReadError: colour data, a size mismatch, or a decoding failure, naming the instance.
    """
    layout = header.layout
    if layout.samples != 1:
        raise ReadError(f"instance {header.source.sop_instance_uid}: {layout.samples} samples per pixel "
                        f"({layout.photometric}); volumes need greyscale images")
    if layout.native_offset is not None and header.source.path is not None:
        raw = fix_bits(read_native(header.source.path, layout), layout)
    else:
        frames = decoded.frames(header)
        raw = frames[(header.source.frame_number or 1) - 1]
    if raw.shape != out.shape:
        raise ReadError(f"instance {header.source.sop_instance_uid}: {raw.shape[0]}x{raw.shape[1]} pixels, "
                        f"the series has {out.shape[0]}x{out.shape[1]}")
    rescale_into(raw, header.slope, header.intercept, out)
