"""The storage SCP against real peers (dcmtk echoscu/storescu, pynetdicom) on loopback."""
from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

from factories import make_ct_series
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.scp import AssociationRecord, StorageSCP
from pacs_bridge.settings import AcceptPolicy, ScpSettings, Source, TlsSettings
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import StoreStatus
from peers import echoscu, free_port, storescu, wait_for

pytestmark = pytest.mark.network


class Recorder:
    """A real listener that keeps what it is told (the ledger's role in the service)."""

    def __init__(self) -> None:
        self.stored: list[InstanceInfo] = []
        self.associations: list[AssociationRecord] = []
        self.lock = threading.Lock()

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None:
        with self.lock:
            self.stored.append(info)

    def association_ended(self, record: AssociationRecord) -> None:
        with self.lock:
            self.associations.append(record)


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[StorageSCP, Spool, Recorder]]:
    policy = AcceptPolicy("AIWS", True, (Source("STORESCU", "127.0.0.1"), Source("PYNET"), Source("ECHOSCU")))
    spool = Spool(tmp_path / "spool", min_free_bytes=1 << 20)
    rec = Recorder()
    server = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port()), lambda: policy, spool, rec)
    server.start()
    yield server, spool, rec
    server.stop()


def _assoc(port: int, calling: str = "PYNET", called: str = "AIWS") -> object:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_echoscu_and_storescu(tmp_path: Path, scp) -> None:
    server, spool, rec = scp
    assert echoscu("127.0.0.1", server.port, "AIWS", "ECHOSCU").returncode == 0
    files = make_ct_series(tmp_path / "ct", n_slices=5)
    out = storescu("127.0.0.1", server.port, "AIWS", "STORESCU", files)
    assert out.returncode == 0, out.stderr
    assert len(rec.stored) == 5
    for f in files:
        src = dcmread(f)
        kept = dcmread(spool.path_for(src.StudyInstanceUID, src.SeriesInstanceUID, src.SOPInstanceUID))
        assert kept.PixelData == src.PixelData
    wait_for(lambda: rec.associations, what="association record")
    assert rec.associations[-1].received == 5 and rec.associations[-1].outcome == "released"
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []


def test_duplicate_is_idempotent(tmp_path: Path, scp) -> None:
    server, _, rec = scp
    files = make_ct_series(tmp_path / "ct", n_slices=2)
    assert storescu("127.0.0.1", server.port, "AIWS", "STORESCU", files + files).returncode == 0
    wait_for(lambda: rec.associations, what="association record")
    assert (rec.associations[-1].received, rec.associations[-1].duplicates) == (2, 2)


@pytest.mark.parametrize("calling,called,reason", [
    ("STRANGER", "AIWS", "Calling AE Title Not Recognized"),
    ("STORESCU", "NOTUS", "Called AE Title Not Recognized"),
])
def test_unknown_peers_rejected(scp, calling: str, called: str, reason: str) -> None:
    server, _, rec = scp
    out = echoscu("127.0.0.1", server.port, called, calling)
    assert out.returncode != 0
    assert reason in out.stdout + out.stderr
    assert rec.associations[-1].outcome == "rejected"


def test_source_host_is_checked(tmp_path: Path) -> None:
    policy = AcceptPolicy("AIWS", True, (Source("ONLYREMOTE", "10.9.9.9"),))
    assert policy.refusal("ONLYREMOTE", "AIWS", "127.0.0.1") is not None
    assert policy.refusal("ONLYREMOTE", "AIWS", "10.9.9.9") is None
    assert AcceptPolicy("AIWS", False).refusal("ANY", "AIWS", "1.2.3.4") is None


def _ct(**overrides: object) -> Dataset:
    ds = dcmread(make_ct_series(Path(str(overrides.pop("tmp"))), n_slices=1, rows=16, cols=16)[0])
    for k, v in overrides.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def _store(port: int, ds: Dataset) -> Dataset:
    assoc = _assoc(port)
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


@pytest.mark.parametrize("overrides,status", [
    ({"StudyInstanceUID": None}, StoreStatus.MISSING_UID),
    ({"SeriesInstanceUID": None}, StoreStatus.MISSING_UID),
    ({"StudyInstanceUID": "../x"}, StoreStatus.INVALID_UID),
    ({"SeriesInstanceUID": "1.2.03.4"}, StoreStatus.INVALID_UID),
    ({"PixelData": b"\x00" * 100}, StoreStatus.DATASET_MISMATCH),
])
def test_bad_instances_get_failure_status(tmp_path: Path, scp, overrides: dict, status: StoreStatus) -> None:
    server, spool, rec = scp
    rsp = _store(server.port, _ct(tmp=tmp_path / "one", **overrides))
    assert rsp.Status == status
    assert rsp.ErrorComment
    assert rec.stored == []
    assert list(spool.instances_dir.rglob("*.dcm")) == []
    assert echoscu("127.0.0.1", server.port, "AIWS", "ECHOSCU").returncode == 0  # still healthy


def test_missing_sop_instance_uid(tmp_path: Path, scp) -> None:
    """The command carries the UID; the data set lacks it."""
    server, _, rec = scp
    ds = _ct(tmp=tmp_path / "one")
    sop = ds.SOPInstanceUID
    del ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    assoc = _assoc(server.port)
    try:
        # pynetdicom takes the command's Affected SOP Instance UID from the data set; send raw bytes instead
        _config.STORE_SEND_CHUNKED_DATASET = True
        path = tmp_path / "nosop.dcm"
        ds.save_as(path, enforce_file_format=False)
        rsp = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    assert rsp.Status == StoreStatus.MISSING_UID
    assert "SOPInstanceUID" in rsp.ErrorComment


def test_unparsable_dataset(tmp_path: Path, scp) -> None:
    server, _, rec = scp
    ds = _ct(tmp=tmp_path / "one")
    path = tmp_path / "garbage.dcm"
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(raw[140:144], "little")
    path.write_bytes(raw[:meta_end] + b"\x08\x00\x18\x00SQ\x00\x00\xff\xff\xff\xff" + b"\x01" * 30)
    assoc = _assoc(server.port)
    try:
        _config.STORE_SEND_CHUNKED_DATASET = True
        rsp = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
    assert rsp.Status == StoreStatus.CANNOT_UNDERSTAND
    assert rec.stored == []


def test_disk_watermark_refuses_new_instances(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=1 << 60)  # more than any disk
    rec = Recorder()
    server = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port()),
                        lambda: AcceptPolicy("AIWS", False), spool, rec)
    server.start()
    try:
        rsp = _store(server.port, _ct(tmp=tmp_path / "one"))
        assert rsp.Status == StoreStatus.OUT_OF_RESOURCES
        assert "watermark" in rsp.ErrorComment
        assert list(spool.root.rglob("*.dcm")) == [] and list(spool.tmp_dir.iterdir()) == []
    finally:
        server.stop()


def test_tls_association(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=aiws-test", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # the sender checks that the certificate names the host
    tls = TlsSettings(cert, key, cert)
    spool = Spool(tmp_path / "spool", 1 << 20)
    rec = Recorder()
    server = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port(), tls=tls),
                        lambda: AcceptPolicy("AIWS", False), spool, rec)
    server.start()
    try:
        from pacs_bridge.sender import send_files
        from pacs_bridge.settings import Destination, SenderSettings

        files = make_ct_series(tmp_path / "ct", n_slices=2)
        dest = Destination("tls", "AIWS", "127.0.0.1", server.port, tls=True)
        report = send_files(dest, files, SenderSettings(ae_title="PYNET", tls=tls))
        assert report.sent == 2 and len(rec.stored) == 2
        plain = _assoc(server.port)  # no TLS: the handshake fails, nothing is stored
        assert not plain.is_established
    finally:
        server.stop()




def test_max_associations(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 0)
    server = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port(), max_associations=1),
                        lambda: AcceptPolicy("AIWS", False), spool, Recorder())
    server.start()
    try:
        first = _assoc(server.port)
        assert first.is_established
        second = _assoc(server.port)
        assert second.is_rejected  # local limit exceeded (transient)
        first.release()
        third = _assoc(server.port)
        assert third.is_established
        third.release()
    finally:
        server.stop()
