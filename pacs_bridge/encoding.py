"""Structural check of an encoded data set: every element parses in its declared transfer syntax.

pydicom reads tolerantly: it switches between explicit and implicit VR when the bytes look like the
other encoding, and returns a short value when an element's length runs past the end. A storage
SCP must not acknowledge such bytes (they would be read differently, or not at all, later), so
:func:`walk` reads the element headers itself: tags, VRs and lengths of every element, item and
fragment, nested sequences included, seeking over the values (memory does not grow with the size
of the data set). Reasons name tags, VRs and lengths, never a value.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.valuerep import VR

from pacs_bridge.errors import InvalidInstance
from pacs_bridge.status import StoreStatus

UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_MAX_DEPTH = 32  # nested sequences; deeper is refused rather than recursed into
_VRS = frozenset(str(v.value).encode() for v in VR if len(str(v.value)) == 2)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())


@dataclass(frozen=True)
class PixelDataLayout:
    """Where the top-level Pixel Data value lies; ``length`` None when encapsulated (fragments)."""

    value_offset: int
    length: int | None
    fragments: int = 0


def _tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _mismatch(reason: str) -> InvalidInstance:
    return InvalidInstance(StoreStatus.CANNOT_UNDERSTAND, reason)


class _Walker:
    """Reads element headers from *fp* between the current position and *end* (bytes)."""

    def __init__(self, fp: BinaryIO, end: int, little_endian: bool) -> None:
        self.fp = fp
        self.end = end
        e = "<" if little_endian else ">"
        self._tag = struct.Struct(f"{e}HH")
        self._u16 = struct.Struct(f"{e}H")
        self._u32 = struct.Struct(f"{e}L")
        self.pixel_data: PixelDataLayout | None = None

    def _read(self, n: int, what: str) -> bytes:
        data = self.fp.read(n)
        if len(data) < n:
            raise _mismatch(f"{what} cut off at byte {self.fp.tell()} of {self.end}")
        return data

    def _header(self, where: str) -> tuple[int, bytes, int]:
        """(tag, the 8 header bytes, the 32-bit word after the tag: an implicit-VR or item length)."""
        raw = self._read(8, f"element header {where}")
        group, elem = self._tag.unpack_from(raw)
        return group << 16 | elem, raw, self._u32.unpack_from(raw, 4)[0]

    def _fits(self, tag: int, start: int, length: int, limit: int, vr_bytes: bytes, implicit: bool) -> None:
        if start + length <= limit:
            return
        hint = ""
        if implicit and vr_bytes in _VRS:
            hint = f"; it reads as explicit VR {vr_bytes.decode()}: explicit VR on an implicit VR context?"
        raise _mismatch(f"{_tag_name(tag)} length {length} runs past the end ({limit - start} bytes left){hint}")

    def dataset(self, limit: int | None, implicit: bool, depth: int, top: bool = False) -> None:
        """Walk one data set up to *limit*, or up to its item delimiter when *limit* is None."""
        if depth > _MAX_DEPTH:
            raise _mismatch(f"sequences nested deeper than {_MAX_DEPTH} levels")
        stop = self.end if limit is None else limit
        while True:
            pos = self.fp.tell()
            if limit is not None and pos >= limit:
                return
            if limit is None and pos >= self.end:
                raise _mismatch("item of undefined length has no item delimitation item")
            tag, raw, word = self._header(f"at byte {pos}")
            if tag == _ITEM_END and limit is None:
                return
            if tag >> 16 == 0xFFFE:
                raise _mismatch(f"unexpected {_tag_name(tag)} inside a data set (byte {pos})")
            vr, length = self._vr_length(tag, raw, word, implicit)
            value_at = self.fp.tell()
            if length == UNDEFINED:
                self._undefined(tag, vr, implicit, depth, top)
                continue
            self._fits(tag, value_at, length, stop, raw[4:6], implicit)
            if top and tag == PIXEL_DATA:
                self.pixel_data = PixelDataLayout(value_at, length)
            is_sq = vr == b"SQ" or (vr is None and _dictionary_is_sq(tag))
            if is_sq and length:
                self.sequence(tag, value_at + length, implicit, depth + 1)
            self.fp.seek(value_at + length)

    def _vr_length(self, tag: int, raw: bytes, word: int, implicit: bool) -> tuple[bytes | None, int]:
        if implicit:
            return None, word
        vr = raw[4:6]
        if vr not in _VRS:
            raise _mismatch(f"implicit VR on an explicit VR context? {_tag_name(tag)} has no VR (bytes {vr.hex()})")
        if vr in _LONG_VRS:
            return vr, self._u32.unpack(self._read(4, f"length of {_tag_name(tag)}"))[0]
        return vr, self._u16.unpack_from(raw, 6)[0]

    def _undefined(self, tag: int, vr: bytes | None, implicit: bool, depth: int, top: bool) -> None:
        """An element of undefined length: a sequence, or encapsulated Pixel Data."""
        if tag == PIXEL_DATA:
            value_at = self.fp.tell()
            fragments = self.fragments(tag)
            if top:
                self.pixel_data = PixelDataLayout(value_at, None, fragments)
            return
        if vr == b"UN":  # PS3.5 6.2.2: content of an undefined-length UN is implicit VR little endian
            self.sequence(tag, None, True, depth + 1)
            return
        if vr == b"SQ" or (vr is None and (_dictionary_is_sq(tag) or self._next_is_item())):
            self.sequence(tag, None, implicit, depth + 1)
            return
        raise _mismatch(f"{_tag_name(tag)} {(vr or b'(implicit)').decode()}: undefined length on a non-sequence")

    def _next_is_item(self) -> bool:
        pos = self.fp.tell()
        raw = self.fp.read(4)
        self.fp.seek(pos)
        if len(raw) < 4:
            return False
        group, elem = self._tag.unpack(raw)
        return (group << 16 | elem) == _ITEM

    def sequence(self, tag: int, limit: int | None, implicit: bool, depth: int) -> None:
        """Walk the items of sequence *tag* up to *limit*, or to its delimiter when *limit* is None."""
        stop = self.end if limit is None else limit
        while True:
            pos = self.fp.tell()
            if limit is not None and pos >= limit:
                return
            item, _, length = self._header(f"of an item of {_tag_name(tag)}")
            if item == _SEQUENCE_END and limit is None:
                return
            if item != _ITEM:
                raise _mismatch(f"sequence {_tag_name(tag)} holds {_tag_name(item)}, not an item (byte {pos})")
            if length == UNDEFINED:
                self.dataset(None, implicit, depth)
                continue
            self._fits(item, pos + 8, length, stop, b"", implicit)
            self.dataset(pos + 8 + length, implicit, depth)

    def fragments(self, tag: int) -> int:
        """Walk the items of encapsulated Pixel Data to its sequence delimiter; return their count."""
        count = 0
        while True:
            pos = self.fp.tell()
            item, _, length = self._header(f"of a fragment of {_tag_name(tag)}")
            if item == _SEQUENCE_END:
                return count
            if item != _ITEM or length == UNDEFINED:
                raise _mismatch(f"encapsulated Pixel Data holds {_tag_name(item)}, not a fragment (byte {pos})")
            self._fits(item, pos + 8, length, self.end, b"", False)
            self.fp.seek(pos + 8 + length)
            count += 1


def _dictionary_is_sq(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def walk(fp: BinaryIO, start: int, end: int, *, implicit_vr: bool, little_endian: bool) -> PixelDataLayout | None:
    """Check the structure of the data set in ``fp[start:end]``; return where its Pixel Data lies.

    Raises:
        InvalidInstance: CANNOT_UNDERSTAND, naming the element and the rule it breaks (a VR that
            is not one, implicit- or explicit-VR bytes on the other context, a length past the end,
            an undefined length on a plain element, a sequence holding something else than items).
    """
    if end - start < 8:
        raise _mismatch(f"{end - start} bytes is not a data set")
    fp.seek(start)
    first = fp.read(6)
    if implicit_vr and first[4:6] in _VRS:  # a first element of >= 16705 bytes would read so too (as pydicom)
        raise _mismatch(f"explicit VR on an implicit VR context (first element reads as {first[4:6].decode()})")
    fp.seek(start)
    walker = _Walker(fp, end, little_endian)
    walker.dataset(end, implicit_vr, 0, top=True)
    if fp.tell() != end:
        raise _mismatch(f"last element ends at byte {fp.tell() - start}, past the data set's {end - start}")
    return walker.pixel_data
