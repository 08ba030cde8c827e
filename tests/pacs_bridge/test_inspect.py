"""The receive check on encoded bytes: pixel lengths per photometric interpretation, encapsulation,
nesting, Deflated streams (bounded)."""
from __future__ import annotations

import zlib

import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from pacs_bridge.errors import InvalidInstance
from pacs_bridge.inspect import parse_instance
from pacs_bridge.status import StoreStatus


def _image(photometric: str, rows: int, cols: int, samples: int, bits: int, pixels: bytes, **extra: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = rows, cols, bits, bits, bits - 1
    ds.PixelRepresentation = 0
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels
    return ds


def _encode(ds: Dataset, implicit: bool = False, little: bool = True) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = little, implicit
    write_dataset(buf, ds)
    return buf.getvalue()


def _refusal(data: bytes, tsyntax: str, max_bytes: int = 0) -> InvalidInstance:
    with pytest.raises(InvalidInstance) as info:
        parse_instance(data, tsyntax, max_bytes)
    return info.value


@pytest.mark.parametrize("photometric,rows,cols,samples,bits,enough,extra", [
    ("YBR_FULL_422", 4, 4, 3, 8, 32, {"PlanarConfiguration": 0}),  # 2 bytes per pixel, not 3
    ("RGB", 4, 4, 3, 8, 48, {"PlanarConfiguration": 1}),  # planar: same length
    ("PALETTE COLOR", 4, 4, 1, 8, 16, {}),
    ("MONOCHROME2", 10, 10, 1, 1, 14, {}),  # 100 bits packed in 13 bytes, padded to 14
    ("MONOCHROME2", 4, 4, 1, 16, 32, {"NumberOfFrames": "1"}),
])
def test_native_pixel_length_per_photometric_interpretation(photometric: str, rows: int, cols: int, samples: int,
                                                           bits: int, enough: int, extra: dict) -> None:
    ok = _image(photometric, rows, cols, samples, bits, b"\x01" * enough, **extra)
    assert parse_instance(_encode(ok), ExplicitVRLittleEndian).sop_instance_uid == ok.SOPInstanceUID
    short = _image(photometric, rows, cols, samples, bits, b"\x01" * (enough - 2), **extra)
    refusal = _refusal(_encode(short), ExplicitVRLittleEndian)
    assert refusal.status == StoreStatus.DATASET_MISMATCH
    assert f"Pixel Data is {enough - 2} bytes" in refusal.reason


def test_big_endian_and_implicit_parse() -> None:
    ds = _image("MONOCHROME2", 4, 4, 1, 16, b"\x00\x01" * 16)
    assert parse_instance(_encode(ds, little=False), ExplicitVRBigEndian).modality == "OT"
    assert parse_instance(_encode(ds, implicit=True), ImplicitVRLittleEndian).modality == "OT"


def test_encapsulated_needs_a_fragment_and_its_syntax() -> None:
    frame = encapsulate([b"\x00" * 10])
    ok = _image("MONOCHROME2", 4, 4, 1, 8, frame)
    ok["PixelData"].is_undefined_length = True
    assert parse_instance(_encode(ok), RLELossless).sop_instance_uid == ok.SOPInstanceUID
    assert "on a native transfer syntax" in _refusal(_encode(ok), ExplicitVRLittleEndian).reason
    empty = _image("MONOCHROME2", 4, 4, 1, 8, b"\xfe\xff\x00\xe0\x00\x00\x00\x00")  # the offset table only
    empty["PixelData"].is_undefined_length = True
    assert "holds no fragment" in _refusal(_encode(empty), RLELossless).reason


def test_nesting_is_bounded() -> None:
    ds = _image("MONOCHROME2", 1, 1, 1, 8, b"\x00\x00")
    inner = ds
    for _ in range(40):
        item = Dataset()
        inner.ReferencedSeriesSequence = Sequence([item])
        inner = item
    assert "nested deeper than 32" in _refusal(_encode(ds), ExplicitVRLittleEndian).reason


def test_deflated_stream_is_inflated_within_the_maximum() -> None:
    ds = _image("MONOCHROME2", 256, 256, 1, 16, bytes(256 * 256 * 2))  # 128 KiB of zeros: a small stream
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = packer.compress(_encode(ds)) + packer.flush()
    assert len(stream) < 2048
    assert parse_instance(stream, DeflatedExplicitVRLittleEndian).sop_instance_uid == ds.SOPInstanceUID
    refusal = _refusal(stream, DeflatedExplicitVRLittleEndian, max_bytes=64 * 1024)
    assert refusal.status == StoreStatus.OUT_OF_RESOURCES and "inflates past" in refusal.reason
    assert "cut off" in _refusal(stream[: len(stream) // 2], DeflatedExplicitVRLittleEndian).reason
