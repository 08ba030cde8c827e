"""Storage SCP: C-ECHO and C-STORE, keeping every acknowledged instance on disk first."""
from __future__ import annotations

import errno
import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from pydicom.dataset import Dataset
from pynetdicom import _config, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from pacs_bridge.ae import scp_ae
from pacs_bridge.errors import InvalidInstance
from pacs_bridge.inspect import InstanceInfo, inspect_stream
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.server import make_association_server
from pacs_bridge.settings import AcceptPolicy, ScpSettings
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import EchoStatus, RejectReason, RejectResult, RejectSource, StoreStatus

LOGGER = logging.getLogger(__name__)

_PREAMBLE = b"\x00" * 128 + b"DICM"
_IMPLEMENTATION_UID = "2.25.153407088511627224327848676915951499683"  # UUID-derived (PS3.5 B.2)
_IMPLEMENTATION_VERSION = "AIWS_010"
_DUL_POLL_S = 0.0001


@dataclass
class AssociationRecord:
    """What one association did; handed to the listener when it ends."""

    calling_ae: str
    called_ae: str
    peer_ip: str
    started_at: str
    ended_at: str = ""
    outcome: str = "accepted"  # accepted→released|aborted, or rejected
    received: int = 0
    duplicates: int = 0
    failed: int = 0
    reason: str = ""
    failures: list[str] = field(default_factory=list)


class StoreListener(Protocol):
    """The SCP's only way out. ``instance_stored`` must be durable when it returns."""

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None: ...

    def association_ended(self, record: AssociationRecord) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _element(group_elem: tuple[int, int], vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian element of the file meta group (short-length VRs and OB)."""
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    tag = struct.pack("<HH", *group_elem)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def file_header(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str) -> bytes:
    """Preamble and File Meta Information (PS3.10 7.1) for a data set kept as received.

    The meta group is packed directly: the data set is never decoded or re-encoded.
    """
    body = b"".join((
        _element((0x0002, 0x0001), b"OB", b"\x00\x01"),
        _element((0x0002, 0x0002), b"UI", sop_class.encode()),
        _element((0x0002, 0x0003), b"UI", sop_instance.encode()),
        _element((0x0002, 0x0010), b"UI", transfer_syntax.encode()),
        _element((0x0002, 0x0012), b"UI", _IMPLEMENTATION_UID.encode()),
        _element((0x0002, 0x0013), b"SH", _IMPLEMENTATION_VERSION.encode()),
        _element((0x0002, 0x0016), b"AE", source_ae.encode("ascii", "replace")[:16]),
    ))
    length = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HI", 4, len(body))
    return b"".join((_PREAMBLE, length, body))


def encode_file(dataset_bytes: bytes, sop_class: str, sop_instance: str, transfer_syntax: str,
                source_ae: str) -> bytes:
    """DICOM file bytes (preamble, File Meta Information, data set as received)."""
    return file_header(sop_class, sop_instance, transfer_syntax, source_ae) + dataset_bytes


def received_dataset_start(fp: BinaryIO) -> int:
    """Offset of the data set in a file pynetdicom received it into (preamble and meta before it).

    Raises:
        InvalidInstance: PROCESSING_FAILURE when the file does not start with a File Meta group.
    """
    fp.seek(128)
    head = fp.read(16)
    if len(head) < 16 or head[:8] != b"DICM\x02\x00\x00\x00":
        raise InvalidInstance(StoreStatus.PROCESSING_FAILURE, "received data set file has no File Meta group")
    return 144 + int.from_bytes(head[12:16], "little")


#: Makes a checked received data set durable: (the C-STORE event, the open received data, its checked
#: identity, where the data set starts in it, the file meta header to write before it) -> the spooled
#: file, or None when it was kept elsewhere (a retrieve). Raises OSError when the write fails.
Keep = Callable[[Event, BinaryIO, InstanceInfo, int, bytes], "SpooledFile | None"]


def store_received(event: Event, keep: Keep, max_dataset_bytes: int, source_ae: str) -> tuple[InstanceInfo, SpooledFile | None]:
    """The bridge's one C-STORE path (the storage SCP's and C-GET's): open the received data set (a file
    with pynetdicom's chunked receive, else memory), check it (size, encoding, UIDs, pixel data, the
    command's SOP Instance UID) and hand it to *keep*; nothing is acknowledged before *keep* returns.

    Raises:
        InvalidInstance: the status and reason to answer with (:func:`failure_response`); nothing is kept.
        OSError: the write failed (:func:`write_failure`).
    """
    received = event.dataset_path
    if isinstance(received, Path):
        with received.open("rb") as fp:
            return _check_and_keep(event, fp, received_dataset_start(fp), keep, max_dataset_bytes, source_ae)
    in_memory = getattr(event.request, "DataSet", None)
    if in_memory is None or not hasattr(in_memory, "getbuffer") or not in_memory.getbuffer().nbytes:
        raise InvalidInstance(StoreStatus.CANNOT_UNDERSTAND, "C-STORE request without a data set")
    return _check_and_keep(event, in_memory, 0, keep, max_dataset_bytes, source_ae)


def _check_and_keep(event: Event, fp: BinaryIO, start: int, keep: Keep, limit: int,
                    source_ae: str) -> tuple[InstanceInfo, SpooledFile | None]:
    size = fp.seek(0, 2) - start
    if limit and size > limit:
        raise InvalidInstance(StoreStatus.OUT_OF_RESOURCES, f"data set is {size} bytes, over the maximum of {limit}")
    tsyntax = str(event.context.transfer_syntax)
    info = inspect_stream(fp, start, tsyntax, limit)
    affected = str(event.request.AffectedSOPInstanceUID or "")
    if affected and affected != info.sop_instance_uid:
        raise InvalidInstance(
            StoreStatus.DATASET_MISMATCH,
            f"SOPInstanceUID {info.sop_instance_uid} differs from the command's {affected}",
        )
    header = file_header(info.sop_class_uid, info.sop_instance_uid, tsyntax, source_ae)
    return info, keep(event, fp, info, start, header)


def write_failure(exc: OSError) -> tuple[StoreStatus, str]:
    """The status and reason for a write that failed: out of resources for a full disk."""
    status = StoreStatus.OUT_OF_RESOURCES if exc.errno == errno.ENOSPC else StoreStatus.PROCESSING_FAILURE
    return status, f"cannot keep instance: {exc.strerror}"


def failure_response(status: StoreStatus, reason: str) -> Dataset:
    """The C-STORE response of a refusal: the status and the reason as one Error Comment (LO) value."""
    rsp = Dataset()
    rsp.Status = int(status)
    rsp.ErrorComment = reason.encode("ascii", "replace").decode().replace("\\", "/")[:64]  # one LO value
    return rsp


class StorageSCP:
    """A running storage SCP. ``policy`` is called at each association request."""

    def __init__(
        self,
        settings: ScpSettings,
        policy: Callable[[], AcceptPolicy],
        spool: Spool,
        listener: StoreListener,
        inbox: RetrieveInbox | None = None,
    ) -> None:
        self.settings = settings
        self._policy = policy
        self._spool = spool
        self._listener = listener
        self._inbox = inbox
        self._server: ThreadedAssociationServer | None = None
        self._records: dict[int, AssociationRecord] = {}
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SCP is not running")
        return int(self._server.server_address[1])

    def start(self) -> None:
        ae = scp_ae(self._policy().ae_title, self.settings)  # called AE title: checked in _on_requested
        # Every C-STORE data set goes from the PDUs into a file, never whole into memory (pynetdicom's
        # switch is process-wide; store_received() reads either way).
        _config.STORE_RECV_CHUNKED_DATASET = True
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        server = make_association_server(ae, self.settings, handlers)  # TLS, limits and timeouts: server.py
        thread = threading.Thread(target=server.serve_forever, name="aiws-scp", daemon=True)
        thread.start()
        ae._servers.append(server)  # as AE.start_server does; server.shutdown() removes it
        self._server = server
        LOGGER.info(
            "storage SCP %s listening on %s:%d%s",
            ae.ae_title, self.settings.host, self.port, " (TLS)" if self.settings.tls else "",
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- association events -------------------------------------------------
    def _on_requested(self, event: Event) -> None:
        assoc = event.assoc
        rq = assoc.requestor
        primitive = rq.primitive  # requestor.ae_title is only filled in after this event
        calling = str(primitive.calling_ae_title).strip() if primitive else ""
        called = str(primitive.called_ae_title).strip() if primitive else ""
        ip = str(rq.address)
        policy = self._policy()
        reason = policy.refusal(calling, called, ip)
        if reason is None:
            assoc.acceptor.ae_title = policy.ae_title
            return
        LOGGER.warning("association from %s (%s) to %s rejected: %s", calling, ip, called, reason)
        diagnostic = (RejectReason.CALLED_AE_TITLE_NOT_RECOGNISED if reason.startswith("called")
                      else RejectReason.CALLING_AE_TITLE_NOT_RECOGNISED)
        assoc.acse.send_reject(int(RejectResult.PERMANENT), int(RejectSource.SERVICE_USER), int(diagnostic))
        assoc.is_rejected = True
        self._listener.association_ended(
            AssociationRecord(calling, called, ip, _now(), _now(), outcome="rejected", reason=reason)
        )
        assoc.kill()

    def _on_accepted(self, event: Event) -> None:
        # pynetdicom's transport loop sleeps 1 ms whenever it finds nothing to do, which adds
        # up to a millisecond to every response; poll faster while an association is open.
        event.assoc.dul._run_loop_delay = _DUL_POLL_S
        rq = event.assoc.requestor
        record = AssociationRecord(
            calling_ae=rq.ae_title.strip(),
            called_ae=str(event.assoc.acceptor.ae_title).strip(),
            peer_ip=str(rq.address),
            started_at=_now(),
        )
        with self._lock:
            self._records[id(event.assoc)] = record
        LOGGER.debug("association accepted from %s (%s)", record.calling_ae, record.peer_ip)

    def _on_ended(self, event: Event) -> None:
        with self._lock:
            record = self._records.pop(id(event.assoc), None)
        if record is None:
            return
        record.ended_at = _now()
        record.outcome = "released" if event.event is evt.EVT_RELEASED else "aborted"
        LOGGER.info(
            "association from %s %s: %d received, %d duplicates, %d failed",
            record.calling_ae, record.outcome, record.received, record.duplicates, record.failed,
        )
        self._listener.association_ended(record)

    def _on_echo(self, event: Event) -> int:
        return int(EchoStatus.SUCCESS)

    # -- storage --------------------------------------------------------------
    def _record(self, event: Event) -> AssociationRecord | None:
        with self._lock:
            return self._records.get(id(event.assoc))

    def _on_store(self, event: Event) -> int | Dataset:
        record = self._record(event)
        calling = event.assoc.requestor.ae_title.strip()
        ip = str(event.assoc.requestor.address)
        affected = str(event.request.AffectedSOPInstanceUID or "")
        try:
            info, spooled = store_received(event, self._keep, self.settings.max_dataset_bytes, calling)
            if spooled is not None:
                self._listener.instance_stored(info, spooled, calling, ip)
        except InvalidInstance as exc:
            return self._failure(record, calling, affected, exc.status, exc.reason)
        except OSError as exc:
            return self._failure(record, calling, affected, *write_failure(exc))
        if record is not None:
            if spooled is None or spooled.created:
                record.received += 1
            else:
                record.duplicates += 1
        LOGGER.debug("%s %s from %s", "stored" if spooled else "retrieved", info.sop_instance_uid, calling)
        return int(StoreStatus.SUCCESS)

    def _keep(self, event: Event, fp: BinaryIO, info: InstanceInfo, start: int, header: bytes) -> SpooledFile | None:
        """Make a checked data set durable: in the spool, or in the retrieve inbox for a prior we asked
        for with C-MOVE (then no spooled file is returned). Raises OSError when the write fails."""
        folder = self._retrieve_folder(event, info.study_instance_uid)
        if folder is not None:  # a prior we asked for with C-MOVE: not a study to route
            fp.seek(start)
            self._inbox.store(folder, info.sop_instance_uid, header + fp.read())  # type: ignore[union-attr]
            return None
        adopted = self._spool.adopt(info, fp)  # received into the spool's tmp folder: renamed, not copied
        return adopted if adopted is not None else self._spool.store_stream(info, header, fp, start)

    def _retrieve_folder(self, event: Event, study_uid: str) -> Path | None:
        if self._inbox is None:
            return None
        originator = event.request.MoveOriginatorApplicationEntityTitle
        if isinstance(originator, bytes):
            originator = originator.decode("ascii", "replace")
        return self._inbox.claims(study_uid, str(originator or "").strip(), self._policy().ae_title)

    def _failure(
        self, record: AssociationRecord | None, calling: str, sop_uid: str, status: StoreStatus, reason: str
    ) -> Dataset:
        LOGGER.warning("C-STORE %s from %s refused (%s): %s", sop_uid or "?", calling, status.name, reason)
        if record is not None:
            record.failed += 1
            if len(record.failures) < 20:
                record.failures.append(f"{status.name}: {reason}")
        return failure_response(status, reason)
