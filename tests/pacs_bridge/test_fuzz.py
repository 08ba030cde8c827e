"""A bounded DICOM fuzzer against a running ``aiws serve`` (issue 20): a few hundred byte-level mutations
of valid data sets (explicit, implicit and deflated little endian, JPEG, a nested SR), fixed seed, sent raw
on the context they claim; and mutations of a whole association's PDUs on raw sockets. The service stays up, answers every C-STORE of every association, and every
instance it acknowledged is readable from the spool and its study processed (or quarantined with a reason).
"""
from __future__ import annotations

import random
import select
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, _config

from factories import make_ct_series
from pacs_bridge.scp import file_header
from peers import AiwsProcess, echoscu, wait_for

pytestmark = [pytest.mark.network, pytest.mark.slow]

SEED = 20261207
MUTATIONS = 320
PER_ASSOCIATION = 40

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
count = 1
max_job_tries = 1
"""


@dataclass(frozen=True)
class Base:
    """A valid data set and the transfer syntax it is sent in."""

    ds: Dataset
    transfer_syntax: str


def _bases(tmp_path: Path) -> list[Base]:
    ct = dcmread(make_ct_series(tmp_path / "ct", n_slices=1, rows=48, cols=48, study_uid="2.25.1001",
                                 series_uid="2.25.1002")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jpeg = dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
        sr = dcmread(get_testdata_file("test-SR.dcm"))
    return [Base(ct, ExplicitVRLittleEndian), Base(ct, ImplicitVRLittleEndian),
            Base(ct, DeflatedExplicitVRLittleEndian), Base(jpeg, JPEGBaseline8Bit), Base(sr, ExplicitVRLittleEndian)]


def _encode(ds: Dataset, transfer_syntax: str) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, transfer_syntax == ImplicitVRLittleEndian
    write_dataset(buf, ds)
    return buf.getvalue()


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _flip(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)


def _truncate(rng: random.Random, b: bytearray) -> None:
    del b[rng.randrange(1, len(b)):]


def _length(rng: random.Random, b: bytearray) -> None:
    """Overwrite a 16- or 32-bit word at an even offset (most are element lengths or tags)."""
    at = rng.randrange(0, len(b) - 4) & ~1
    value = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 16), rng.randrange(1 << 32)])
    width = rng.choice([2, 4])
    b[at:at + width] = value.to_bytes(4, "little")[:width]


def _insert(rng: random.Random, b: bytearray) -> None:
    at = rng.randrange(len(b))
    b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def _duplicate(rng: random.Random, b: bytearray) -> None:
    start = rng.randrange(len(b))
    chunk = b[start:start + rng.randint(2, 64)]
    at = rng.randrange(len(b))
    b[at:at] = chunk


def _delete(rng: random.Random, b: bytearray) -> None:
    start = rng.randrange(len(b))
    del b[start:start + rng.randint(1, 32)]


MUTATORS: tuple[Callable[[random.Random, bytearray], None], ...] = (_flip, _truncate, _length, _insert, _duplicate,
                                                                    _delete)


def _mutant(rng: random.Random, base: Base, path: Path) -> tuple[str, str]:
    """Write one mutated instance to *path* (its meta claims the base's syntax); return (SOP UID, syntax)."""
    ds = base.ds
    ds.SOPInstanceUID = f"2.25.{rng.getrandbits(95) | 1 << 95}"  # 29 digits each time: same outcomes
    data = bytearray(_encode(ds, base.transfer_syntax))
    deflated = base.transfer_syntax == DeflatedExplicitVRLittleEndian
    if deflated and rng.random() < 0.5:  # mutate the stream itself, or the data set before deflating
        data = bytearray(_deflate(bytes(data)))
        deflated = False
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        rng.choice(MUTATORS)(rng, data)
    body = _deflate(bytes(data)) if deflated else bytes(data)
    path.write_bytes(file_header(ds.SOPClassUID, ds.SOPInstanceUID, base.transfer_syntax, "FUZZ") + body)
    return str(ds.SOPInstanceUID), base.transfer_syntax


def _pause_reactor(assoc: Any) -> None:
    """Work around a race in the pynetdicom requestor (not in the service; pydicom/pynetdicom#875): send_c_store
    pauses the association's reactor thread and waits for its ``_is_paused`` flag, but the reactor sets that flag
    before it checks the pause, so a reactor iteration already under way can take the C-STORE response off the
    queue ("Received unexpected C-STORE service message") and the request then waits out the DIMSE timeout. Seen
    once in a full run on 2 loaded cores. Paused here first, with time for such an iteration to end, the reactor is
    blocked when send_c_store pauses it again."""
    assoc._reactor_checkpoint.clear()
    deadline = time.monotonic() + 5
    while not assoc._is_paused and time.monotonic() < deadline:
        time.sleep(0.0001)
    time.sleep(0.02)


def _send_batch(port: int, bases: list[Base], files: list[Path]) -> list[int | None]:
    """One association; the C-STORE status of each file (None: no response)."""
    ae = AE(ae_title="FUZZ")
    for cx in {(str(b.ds.SOPClassUID), b.transfer_syntax) for b in bases}:
        ae.add_requested_context(cx[0], [cx[1]])
    assoc = ae.associate("127.0.0.1", port, ae_title="AIWS")
    assert assoc.is_established, "association not answered"
    statuses: list[int | None] = []
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        for path in files:
            _pause_reactor(assoc)
            rsp = assoc.send_c_store(path)
            statuses.append(int(rsp.Status) if rsp is not None and "Status" in rsp else None)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        if assoc.is_established:
            assoc.release()
    return statuses


def _settled(aiws: AiwsProcess) -> list[dict] | None:
    studies = aiws.api("/api/studies?limit=1000")
    jobs = aiws.api("/api/jobs?limit=1000")
    if any(s["state"] == "receiving" for s in studies) or any(j["state"] in ("pending", "running") for j in jobs):
        return None
    return studies


def test_fuzzed_data_sets(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    bases = _bases(tmp_path)
    aiws = AiwsProcess(tmp_path / "aiws", CONFIG)
    (tmp_path / "aiws").mkdir()
    aiws.start()
    acknowledged: dict[str, str] = {}
    refused = 0
    try:
        for batch in range(MUTATIONS // PER_ASSOCIATION):
            folder = tmp_path / f"batch{batch}"
            folder.mkdir()
            sent = [_mutant(rng, rng.choice(bases), folder / f"{i}.dcm") for i in range(PER_ASSOCIATION)]
            statuses = _send_batch(aiws.dicom_port, bases, sorted(folder.iterdir(), key=lambda p: int(p.stem)))
            assert None not in statuses, f"batch {batch}: a C-STORE got no response: {statuses}"
            for (sop, ts), status in zip(sent, statuses):
                if status == 0:
                    acknowledged[sop] = ts
                else:
                    refused += 1
        studies = wait_for(lambda: _settled(aiws), timeout=120, interval=1, what="every study settled")
        assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU").returncode == 0
        jobs = aiws.api("/api/jobs?limit=1000")
        quarantine = aiws.api("/api/quarantine?limit=1000")
    finally:
        aiws.stop()
    assert refused >= MUTATIONS // 4 and len(acknowledged) >= MUTATIONS // 10, (refused, len(acknowledged))

    spooled = {p.stem: p for p in (aiws.data_dir / "spool" / "instances").rglob("*.dcm")}
    assert quarantine == [], [q["reason"] for q in quarantine]
    for sop in acknowledged:
        assert sop in spooled, f"acknowledged {sop} is not in the spool"
        ds = dcmread(spooled[sop])  # the whole file, pixel data included
        assert ds.SOPInstanceUID == sop
    done = {j["study_uid"] for j in jobs if j["state"] == "done"}
    failed = {j["study_uid"]: j["error"] for j in jobs if j["state"] == "failed"}
    for study in studies:
        assert study["study_uid"] in done, f"study {study['study_uid']} not processed: {failed.get(study['study_uid'])}"


PDU_MUTATIONS = 60


def _recorded_association(port: int, base: Base, path: Path) -> bytes:
    """What a pynetdicom requestor sends for one association (A-ASSOCIATE-RQ, the C-STORE's P-DATA-TF PDUs,
    A-RELEASE-RQ), recorded by a relay in front of the service."""
    listener = socket.create_server(("127.0.0.1", 0))
    recorded = bytearray()

    def relay() -> None:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", port))
        with client, upstream:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        recorded.extend(data)
                    (upstream if sock is client else client).sendall(data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    statuses = _send_batch(listener.getsockname()[1], [base], [path])
    thread.join(15)
    listener.close()
    assert statuses == [0]
    return bytes(recorded)


def _send_raw_stream(port: int, data: bytes) -> None:
    """Send *data* on a fresh connection, read what comes back for a moment, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.settimeout(0.3)
            while sock.recv(65536):
                pass
        except OSError:  # reset or timed out: the service dropped or is waiting for more
            return


def test_fuzzed_pdus(tmp_path: Path) -> None:
    """Mutated bytes of a whole association (PDU types, lengths, items, the data set inside): the service
    keeps answering, and what it acknowledged is readable."""
    rng = random.Random(SEED + 1)
    base = _bases(tmp_path)[0]
    aiws = AiwsProcess(tmp_path / "aiws", CONFIG)
    (tmp_path / "aiws").mkdir()
    aiws.start()
    try:
        valid = tmp_path / "valid.dcm"
        valid.write_bytes(file_header(base.ds.SOPClassUID, base.ds.SOPInstanceUID, base.transfer_syntax, "FUZZ")
                          + _encode(base.ds, base.transfer_syntax))
        stream = _recorded_association(aiws.dicom_port, base, valid)
        for _ in range(PDU_MUTATIONS):
            data = bytearray(stream)
            for _ in range(rng.choice([1, 1, 2])):
                rng.choice(MUTATORS)(rng, data)
            _send_raw_stream(aiws.dicom_port, bytes(data))
        assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU").returncode == 0
        base.ds.SOPInstanceUID = "2.25.424242"
        after = tmp_path / "after.dcm"
        after.write_bytes(file_header(base.ds.SOPClassUID, base.ds.SOPInstanceUID, base.transfer_syntax, "FUZZ")
                          + _encode(base.ds, base.transfer_syntax))
        assert _send_batch(aiws.dicom_port, [base], [after]) == [0]
    finally:
        aiws.stop()
    for path in (aiws.data_dir / "spool" / "instances").rglob("*.dcm"):
        assert dcmread(path).SOPInstanceUID == path.stem
