"""What the SCP acknowledges parses in its transfer syntax (issue 20 item 5, issue 26): data sets crafted
byte by byte and sent raw on the context they claim (pynetdicom), real files sent by dcmtk storescu."""
from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, _config

from factories import make_ct_series
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.scp import AssociationRecord, StorageSCP, file_header
from pacs_bridge.settings import AcceptPolicy, ScpSettings
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import StoreStatus
from peers import echoscu, free_port, storescu, wait_for

pytestmark = pytest.mark.network


class Recorder:
    def __init__(self) -> None:
        self.stored: list[tuple[InstanceInfo, SpooledFile]] = []
        self.associations: list[AssociationRecord] = []
        self.lock = threading.Lock()

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None:
        with self.lock:
            self.stored.append((info, spooled))

    def association_ended(self, record: AssociationRecord) -> None:
        with self.lock:
            self.associations.append(record)


def _server(tmp_path: Path, **settings: object) -> tuple[StorageSCP, Recorder]:
    rec = Recorder()
    server = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port(), **settings),  # type: ignore[arg-type]
                        lambda: AcceptPolicy("AIWS", False), Spool(tmp_path / "spool", 0), rec)
    server.start()
    return server, rec


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[StorageSCP, Recorder]]:
    server, rec = _server(tmp_path)
    yield server, rec
    server.stop()


def _ct(tmp_path: Path) -> Dataset:
    return dcmread(make_ct_series(tmp_path / "src", n_slices=1, rows=16, cols=16)[0])


def _encode(ds: Dataset, implicit: bool) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, implicit
    write_dataset(buf, ds)
    return buf.getvalue()


def _raw_file(path: Path, ds: Dataset, transfer_syntax: str, dataset_bytes: bytes) -> Path:
    """A file whose meta claims *transfer_syntax* and whose data set is *dataset_bytes*, whatever they are."""
    path.write_bytes(file_header(ds.SOPClassUID, ds.SOPInstanceUID, transfer_syntax, "TEST") + dataset_bytes)
    return path


def _send_raw(port: int, path: Path, transfer_syntax: str) -> Dataset:
    """C-STORE the file's data set bytes as they are, on a context of its claimed transfer syntax."""
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(CTImageStorage, [transfer_syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="AIWS")
    assert assoc.is_established
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()


def _refused(rsp: Dataset, status: StoreStatus, words: str, rec: Recorder, port: int) -> None:
    assert rsp.Status == status, rsp
    assert words in rsp.ErrorComment
    assert rec.stored == []
    assert echoscu("127.0.0.1", port, "AIWS", "ECHOSCU").returncode == 0  # still serving


def test_explicit_bytes_on_implicit_context(tmp_path: Path, scp) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    path = _raw_file(tmp_path / "x.dcm", ds, ImplicitVRLittleEndian, _encode(ds, implicit=False))
    _refused(_send_raw(server.port, path, ImplicitVRLittleEndian), StoreStatus.CANNOT_UNDERSTAND,
             "explicit VR on an implicit VR context", rec, server.port)


def test_implicit_bytes_on_explicit_context(tmp_path: Path, scp) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    path = _raw_file(tmp_path / "x.dcm", ds, ExplicitVRLittleEndian, _encode(ds, implicit=True))
    _refused(_send_raw(server.port, path, ExplicitVRLittleEndian), StoreStatus.CANNOT_UNDERSTAND,
             "implicit VR on an explicit VR context", rec, server.port)


def test_element_length_past_the_end(tmp_path: Path, scp) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    path = _raw_file(tmp_path / "x.dcm", ds, ExplicitVRLittleEndian, _encode(ds, implicit=False)[:-100])
    _refused(_send_raw(server.port, path, ExplicitVRLittleEndian), StoreStatus.CANNOT_UNDERSTAND,
             "(7FE0,0010) length 512 runs past the end (412 bytes left)", rec, server.port)


def test_native_pixels_on_jpeg_context(tmp_path: Path, scp) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    path = _raw_file(tmp_path / "x.dcm", ds, JPEGBaseline8Bit, _encode(ds, implicit=False))
    _refused(_send_raw(server.port, path, JPEGBaseline8Bit), StoreStatus.CANNOT_UNDERSTAND,
             "native Pixel Data on an encapsulated", rec, server.port)


@pytest.mark.parametrize("keyword,value,words", [
    ("BitsAllocated", 0, "BitsAllocated 0 is neither 1 nor a multiple of 8"),
    ("NumberOfFrames", "-1", "NumberOfFrames -1 is below 1"),
    ("Rows", 0, "Rows 0 is below 1"),
])
def test_impossible_image_attributes(tmp_path: Path, scp, keyword: str, value: object, words: str) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    setattr(ds, keyword, value)
    path = _raw_file(tmp_path / "x.dcm", ds, ExplicitVRLittleEndian, _encode(ds, implicit=False))
    _refused(_send_raw(server.port, path, ExplicitVRLittleEndian), StoreStatus.DATASET_MISMATCH, words, rec,
             server.port)


def test_deflated_data_set_is_inflated_and_kept_readable(tmp_path: Path, scp) -> None:
    server, rec = scp
    ds = _ct(tmp_path)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = packer.compress(_encode(ds, implicit=False)) + packer.flush()
    path = _raw_file(tmp_path / "x.dcm", ds, DeflatedExplicitVRLittleEndian, deflated)
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(CTImageStorage, [DeflatedExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", server.port, ae_title="AIWS")
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        rsp = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    assert rsp.Status == StoreStatus.SUCCESS
    (info, spooled), = rec.stored
    assert info.study_instance_uid == ds.StudyInstanceUID and info.modality == "CT"
    kept = dcmread(spooled.path)
    assert kept.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(kept.pixel_array, ds.pixel_array)


def test_non_deflated_bytes_on_deflated_context(tmp_path: Path, scp) -> None:
    """The poison pill: acknowledged before, unreadable from the spool afterwards."""
    server, rec = scp
    ds = _ct(tmp_path)
    path = _raw_file(tmp_path / "x.dcm", ds, DeflatedExplicitVRLittleEndian, _encode(ds, implicit=False))
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(CTImageStorage, [DeflatedExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", server.port, ae_title="AIWS")
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        rsp = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    _refused(rsp, StoreStatus.CANNOT_UNDERSTAND, "Deflated data set", rec, server.port)


def test_data_set_over_the_maximum_size(tmp_path: Path) -> None:
    server, rec = _server(tmp_path, max_dataset_bytes=4096)
    try:
        small = make_ct_series(tmp_path / "small", n_slices=1, rows=16, cols=16)
        large = make_ct_series(tmp_path / "large", n_slices=1, rows=64, cols=64)  # 8 KiB of pixels
        out = storescu("127.0.0.1", server.port, "AIWS", "STORESCU", small + large, "-d", "-nh")
        assert "data set is" in out.stdout + out.stderr and "maximum of 4096" in out.stdout + out.stderr
        assert "0xa700" in (out.stdout + out.stderr).lower()
        assert [i.sop_instance_uid for i, _ in rec.stored] == [dcmread(small[0]).SOPInstanceUID]
    finally:
        server.stop()


@pytest.mark.parametrize("name", [
    "SC_ybr_full_422_uncompressed.dcm",  # 2 bytes per pixel pair, not 3 per pixel
    "ExplVR_BigEnd.dcm",  # big endian
    "color-pl.dcm",  # retired Ultrasound Image Storage, palette
    "image_dfl.dcm",  # deflated, with a gzip trailer after the stream
    "OBXXXX1A_rle.dcm",  # RLE Lossless, encapsulated
])
def test_real_files_from_other_writers_are_kept_readable(tmp_path: Path, scp, name: str) -> None:
    server, rec = scp
    source = Path(get_testdata_file(name))
    ts = str(dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    option = {"1.2.840.10008.1.2.2": "-xb", "1.2.840.10008.1.2.1.99": "-xd", "1.2.840.10008.1.2.5": "-xr"}
    out = storescu("127.0.0.1", server.port, "AIWS", "STORESCU", [source], "-R", option.get(ts, "-xe"))
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: rec.associations, what="association record")
    assert rec.associations[-1].received == 1, rec.associations[-1]
    (info, spooled), = rec.stored
    kept, original = dcmread(spooled.path), dcmread(source)
    assert kept.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(kept.pixel_array, original.pixel_array)


def test_spool_adopts_a_received_file_in_its_tmp_folder(tmp_path: Path) -> None:
    """A data set received into the spool's tmp folder is renamed into place (not copied); one elsewhere,
    or whose meta names another instance, is not adopted."""
    spool = Spool(tmp_path / "spool", 0)
    ds = _ct(tmp_path)
    data = file_header(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "X") + _encode(ds, False)
    info = InstanceInfo(ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, "CT",
                        ExplicitVRLittleEndian)
    elsewhere = tmp_path / "tmpa.dcm"
    elsewhere.write_bytes(data)
    with elsewhere.open("rb") as fp:
        assert spool.adopt(info, fp) is None
    other = InstanceInfo(ds.SOPClassUID, "1.2.3.4", ds.StudyInstanceUID, ds.SeriesInstanceUID, "CT",
                         ExplicitVRLittleEndian)
    staged = spool.tmp_dir / "tmpb.dcm"
    staged.write_bytes(data)
    with staged.open("rb") as fp:
        assert spool.adopt(other, fp) is None
        spooled = spool.adopt(info, fp)
    assert spooled is not None and spooled.created and not staged.exists()
    assert spooled.path.read_bytes() == data
    assert dcmread(spooled.path).SOPInstanceUID == ds.SOPInstanceUID
