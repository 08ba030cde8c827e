"""Storage SCP: C-ECHO and C-STORE, keeping every acknowledged instance on disk first."""
from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from pacs_bridge.contexts import storage_contexts
from pacs_bridge.errors import InvalidInstance
from pacs_bridge.inspect import InstanceInfo, parse_instance
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.settings import AcceptPolicy, ScpSettings
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import StoreStatus
from pacs_bridge.tls import server_context

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


class _NoDelayServer(ThreadedAssociationServer):
    """Association server that turns Nagle's algorithm off on accepted sockets."""

    def get_request(self):  # type: ignore[no-untyped-def]
        client, address = super().get_request()
        raw = getattr(client, "socket", client)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            LOGGER.debug("TCP_NODELAY not set: %s", exc)
        return client, address


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _element(group_elem: tuple[int, int], vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian element of the file meta group (short-length VRs and OB)."""
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    tag = struct.pack("<HH", *group_elem)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def encode_file(dataset_bytes: bytes, sop_class: str, sop_instance: str, transfer_syntax: str,
                source_ae: str) -> bytes:
    """DICOM file bytes (preamble, File Meta Information, data set as received).

    The meta group is packed directly (PS3.10 7.1): the data set is never
    decoded or re-encoded.
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
    return b"".join((_PREAMBLE, length, body, dataset_bytes))


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
        ae = AE(ae_title=self._policy().ae_title)
        ae.supported_contexts = storage_contexts()
        ae.require_called_aet = False  # checked in _on_requested against the live policy
        ae.maximum_associations = self.settings.max_associations
        ae.maximum_pdu_size = self.settings.max_pdu_bytes
        ae.network_timeout = self.settings.network_timeout_s
        ae.dimse_timeout = self.settings.dimse_timeout_s
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        ssl_ctx = server_context(self.settings.tls) if self.settings.tls else None
        server = ae.make_server(
            (self.settings.host, self.settings.port),
            ssl_context=ssl_ctx,
            evt_handlers=handlers,
            server_class=_NoDelayServer,
        )
        thread = threading.Thread(target=server.serve_forever, name="aiws-scp", daemon=True)
        thread.start()
        ae._servers.append(server)  # as AE.start_server does; server.shutdown() removes it
        self._server = server
        LOGGER.info(
            "storage SCP %s listening on %s:%d%s",
            ae.ae_title, self.settings.host, self.port, " (TLS)" if ssl_ctx else "",
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
        diagnostic = 0x07 if reason.startswith("called") else 0x03
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
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
        return int(StoreStatus.SUCCESS)

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
            raw = event.request.DataSet.getvalue()  # type: ignore[union-attr]
            tsyntax = str(event.context.transfer_syntax)
            info, _ = parse_instance(raw, tsyntax)
            if affected and affected != info.sop_instance_uid:
                raise InvalidInstance(
                    StoreStatus.DATASET_MISMATCH,
                    f"SOPInstanceUID {info.sop_instance_uid} differs from the command's {affected}",
                )
            data = encode_file(raw, info.sop_class_uid, info.sop_instance_uid, tsyntax, calling)
            folder = self._retrieve_folder(event, info.study_instance_uid)
            if folder is not None:  # a prior we asked for with C-MOVE: not a study to route
                self._inbox.store(folder, info.sop_instance_uid, data)  # type: ignore[union-attr]
                if record is not None:
                    record.received += 1
                LOGGER.debug("retrieved %s from %s", info.sop_instance_uid, calling)
                return int(StoreStatus.SUCCESS)
            spooled = self._spool.store(info, data)
            self._listener.instance_stored(info, spooled, calling, ip)
        except InvalidInstance as exc:
            return self._failure(record, calling, affected, exc.status, exc.reason)
        except OSError as exc:
            status = StoreStatus.OUT_OF_RESOURCES if exc.errno == errno.ENOSPC else StoreStatus.PROCESSING_FAILURE
            return self._failure(record, calling, affected, status, f"cannot keep instance: {exc.strerror}")
        if record is not None:
            if spooled.created:
                record.received += 1
            else:
                record.duplicates += 1
        LOGGER.debug("stored %s from %s", info.sop_instance_uid, calling)
        return int(StoreStatus.SUCCESS)

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
        rsp = Dataset()
        rsp.Status = int(status)
        rsp.ErrorComment = reason[:64]
        return rsp
