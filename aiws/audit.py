"""Export of the audit trail: each ledger audit row becomes a DICOM audit message (PS3.15 Annex A.5,
the IHE ATNA schema) carried in an RFC 5424 syslog frame, sent to ``[audit] syslog`` over UDP
(RFC 5426, one frame per datagram), TCP (RFC 6587 octet counting) or TLS (RFC 5425: octet counting in a
TLS 1.2+ connection; the collector's certificate checked against ``[audit.tls] ca_file`` and its name, a
client certificate when configured).

The exporter reads the ledger, not an in-process queue: rows written by worker processes and CLI
commands are exported too, in id order, and the position reached is kept in the ledger's ``meta``
(``audit_exported_id``), so a restart resumes where it stopped and a collector that was down gets
the rows it missed. Each frame carries the row id as ``[meta sequenceId="…"]``; the collector's copy
is the external anchor against a rewrite of the whole chain (see :mod:`aiws.ledger.audit`).

Mapping (DCM codes of CID 400 / 401; events without a DICOM code carry an ``AIWS`` type code):
service start/stop -> Application Activity (110100) with Application Start/Stop (110120/110121);
association, results sent, manual send, instance refused/quarantined -> DICOM Instances Transferred
(110104), a rejected association -> Security Alert (110113) / Node Authentication (110126); network configuration changes -> Security Alert (110113) / Network Configuration (110128);
study purged -> DICOM Study Deleted (110105); audit verified -> Audit Log Used (110101); jobs,
plugin runs, echo and the rest -> Application Activity with the AIWS action as event type.
Deviation, by design: no Patient participant object (the messages carry no patient data); the
study is identified by its Study Instance UID only.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from aiws.config import SyslogTlsConfig
from aiws.errors import AiwsError
from aiws.ledger import Ledger
from aiws.ledger.audit import AuditRow

LOGGER = logging.getLogger(__name__)

#: facility 10 (security/authorization, as IHE ATNA asks) * 8 + severity 5 (notice); 4 (warning) for failures
FACILITY = 10
MSGID = "IHE+RFC-3881"
APP_NAME = "AIWS"
EXPORTED_KEY = "audit_exported_id"


@dataclass(frozen=True)
class Code:
    code: str
    system: str
    text: str


def _dcm(code: str, text: str) -> Code:
    return Code(code, "DCM", text)


APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
SECURITY_ALERT = _dcm("110113", "Security Alert")
STUDY_DELETED = _dcm("110105", "DICOM Study Deleted")
AUDIT_LOG_USED = _dcm("110101", "Audit Log Used")
NETWORK_CONFIGURATION = _dcm("110128", "Network Configuration")
NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
SOFTWARE_CONFIGURATION = _dcm("110131", "Software Configuration")

#: action -> (EventID, EventTypeCode or None for an AIWS code of the action, EventActionCode)
EVENTS: dict[str, tuple[Code, Code | None, str]] = {
    "service started": (APPLICATION_ACTIVITY, _dcm("110120", "Application Start"), "E"),
    "service stopped": (APPLICATION_ACTIVITY, _dcm("110121", "Application Stop"), "E"),
    "association": (INSTANCES_TRANSFERRED, None, "C"),
    "instance refused": (INSTANCES_TRANSFERRED, None, "C"),
    "instance quarantined": (INSTANCES_TRANSFERRED, None, "C"),
    "results sent": (INSTANCES_TRANSFERRED, None, "R"),
    "manual send": (INSTANCES_TRANSFERRED, None, "R"),
    "send dead-lettered": (INSTANCES_TRANSFERRED, None, "R"),
    "study purged": (STUDY_DELETED, None, "D"),
    "audit verified": (AUDIT_LOG_USED, None, "R"),
    "network config loaded from file": (SECURITY_ALERT, NETWORK_CONFIGURATION, "U"),
    "local AE changed": (SECURITY_ALERT, NETWORK_CONFIGURATION, "U"),
    "source added": (SECURITY_ALERT, NETWORK_CONFIGURATION, "C"),
    "source removed": (SECURITY_ALERT, NETWORK_CONFIGURATION, "D"),
    "destination added": (SECURITY_ALERT, NETWORK_CONFIGURATION, "C"),
    "destination changed": (SECURITY_ALERT, NETWORK_CONFIGURATION, "U"),
    "destination removed": (SECURITY_ALERT, NETWORK_CONFIGURATION, "D"),
    "model promoted": (SECURITY_ALERT, SOFTWARE_CONFIGURATION, "U"),
    "model rolled back": (SECURITY_ALERT, SOFTWARE_CONFIGURATION, "U"),
}
_FAILED_ACTIONS = {"job failed": "8", "send dead-lettered": "8", "study error": "8", "echo failed": "4",
                   "instance refused": "4", "instance quarantined": "4"}


def outcome(row: AuditRow) -> str:
    """EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure."""
    if row.action == "association":
        if row.detail.get("outcome") in ("rejected", "aborted") or row.detail.get("failed"):
            return "4"
        return "0"
    if row.action == "audit verified" and not row.detail.get("ok", True):
        return "8"
    if row.action == "plugin.run" and row.detail.get("status") not in (None, "ok"):
        return "4"
    return _FAILED_ACTIONS.get(row.action, "0")


def _code(parent: ET.Element, tag: str, code: Code, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code.code, "codeSystemName": code.system,
                                       "originalText": code.text, **attrs})


def _participant(msg: ET.Element, user_id: str, requestor: bool, role: Code | None, host: str = "") -> None:
    attrs = {"UserID": user_id, "UserIsRequestor": "true" if requestor else "false"}
    if host:
        attrs |= {"NetworkAccessPointID": host, "NetworkAccessPointTypeCode": "2"}
    part = ET.SubElement(msg, "ActiveParticipant", attrs)
    if role is not None:
        _code(part, "RoleIDCode", role)


_SOURCE_ROLE = _dcm("110153", "Source Role ID")
_DESTINATION_ROLE = _dcm("110152", "Destination Role ID")
_APPLICATION_ROLE = _dcm("110150", "Application")


def audit_message(row: AuditRow, ae_title: str, hostname: str) -> str:
    """The DICOM audit message (PS3.15 A.5.1 schema) of one ledger audit row, as XML text."""
    event_id, event_type, action_code = EVENTS.get(row.action, (APPLICATION_ACTIVITY, None, "E"))
    if row.action == "association" and row.detail.get("outcome") == "rejected":  # nothing was transferred
        event_id, event_type, action_code = SECURITY_ALERT, NODE_AUTHENTICATION, "E"
    msg = ET.Element("AuditMessage")
    ev = ET.SubElement(msg, "EventIdentification", {
        "EventActionCode": action_code, "EventDateTime": _iso(row.at), "EventOutcomeIndicator": outcome(row)})
    _code(ev, "EventID", event_id)
    _code(ev, "EventTypeCode", event_type or Code(row.action, "AIWS", row.action))
    d = row.detail
    if row.action == "association":
        _participant(msg, str(d.get("calling_ae", "")), True, _SOURCE_ROLE, str(d.get("peer_ip", "")))
        _participant(msg, str(d.get("called_ae", ae_title)), False, _DESTINATION_ROLE, hostname)
    elif event_id is INSTANCES_TRANSFERRED and action_code == "R":
        _participant(msg, ae_title, True, _SOURCE_ROLE, hostname)
        _participant(msg, str(d.get("destination", "")), False, _DESTINATION_ROLE)
    else:
        _participant(msg, row.actor, row.actor not in ("service", "scheduler", "worker", "sender", "scp"),
                     None)
        _participant(msg, ae_title, False, _APPLICATION_ROLE, hostname)
    ET.SubElement(msg, "AuditSourceIdentification", {"AuditSourceID": f"{ae_title}@{hostname}"})
    if d.get("study_uid"):
        obj = ET.SubElement(msg, "ParticipantObjectIdentification", {
            "ParticipantObjectID": str(d["study_uid"]), "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3"})
        _code(obj, "ParticipantObjectIDTypeCode", _dcm("110180", "Study Instance UID"))
    return ET.tostring(msg, encoding="unicode")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def syslog_frame(row: AuditRow, xml: str, hostname: str) -> bytes:
    """One RFC 5424 message: header, ``[meta sequenceId]``, then the XML as UTF-8 with its BOM (6.4)."""
    severity = 4 if outcome(row) != "0" else 5
    header = (f"<{FACILITY * 8 + severity}>1 {_iso(row.at)} {_printable(hostname, 255)} {APP_NAME} "
              f"{os.getpid()} {MSGID} [meta sequenceId=\"{row.id % 2147483647 or 1}\"] ")
    return header.encode("ascii") + b"\xef\xbb\xbf" + xml.encode("utf-8")


def _printable(value: str, limit: int) -> str:
    text = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


class SyslogError(AiwsError):
    """The collector cannot be reached (the rows stay unexported and are sent again later)."""


def tls_context(tls: SyslogTlsConfig) -> ssl.SSLContext:
    """The client context of an RFC 5425 connection: TLS 1.2 or newer, the peer's certificate verified
    (against *tls.ca_file*, else the system store) and its name checked; our certificate when configured.

    Raises:
        SyslogError: a file that cannot be read or is not PEM, naming the setting.
    """
    what = "audit.tls.ca_file"
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.cert_file is not None:
            what = "audit.tls.cert_file / key_file"
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise SyslogError(f"{what}: cannot load ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    return context


def _tls_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"collector's certificate not accepted: {exc.verify_message} (check audit.tls.ca_file and server_name)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or type(exc).__name__}"
    return type(exc).__name__


class SyslogClient:
    """Sends frames to ``udp://host:port`` (one datagram each), ``tcp://host:port`` (octet counting) or
    ``tls://host:port`` (octet counting over TLS, RFC 5425, with *tls* settings)."""

    #: After a TLS handshake, how long to listen for the collector refusing us (TLS 1.3 sends a refused client
    #: certificate as an alert after the handshake: frames written before it arrives would be lost).
    handshake_wait_s = 0.5

    def __init__(self, url: str, timeout_s: float = 5.0, tls: SyslogTlsConfig | None = None) -> None:
        scheme, rest = url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        self.url, self.scheme, self.address = url, scheme, (host.strip("[]"), int(port))
        self.timeout_s = timeout_s
        self.tls = tls or SyslogTlsConfig()
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            context = tls_context(self.tls) if self.scheme == "tls" else None  # read again at each connection
            kind = socket.SOCK_DGRAM if self.scheme == "udp" else socket.SOCK_STREAM
            info = socket.getaddrinfo(*self.address, type=kind)[0]
            sock = socket.socket(info[0], kind)
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(info[4])
                if context is not None:
                    sock = context.wrap_socket(sock, server_hostname=self.tls.server_name or self.address[0])
                    if self._peer_closed(sock, self.handshake_wait_s):
                        raise ConnectionResetError("the collector closed the connection after the handshake")
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def _peer_closed(self, sock: socket.socket, wait_s: float) -> bool:
        """Whether the collector closed the connection (it never sends anything else): an EOF within *wait_s*.

        Raises:
            OSError: what the read raised (a TLS alert: ssl.SSLError).
        """
        sock.settimeout(wait_s)
        try:
            return sock.recv(1) == b""
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            return False
        finally:
            sock.settimeout(self.timeout_s)

    def send(self, frame: bytes) -> None:
        """Raises: SyslogError naming the collector and the error type (for TLS, why the handshake failed)."""
        try:
            if self._sock is not None and self.scheme != "udp" and self._peer_closed(self._sock, 0):
                self.close()  # the collector went away since the last frame: a new connection, nothing written
            sock = self._connect()
            if self.scheme == "udp":
                sock.send(frame)
            else:
                sock.sendall(f"{len(frame)} ".encode("ascii") + frame)
        except OSError as exc:
            self.close()
            raise SyslogError(f"audit collector {self.url}: {_tls_reason(exc)}") from None
        except SyslogError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class AuditExporter:
    """A thread that sends the rows not yet exported, every *interval_s*, in id order."""

    def __init__(self, ledger: Ledger, url: str, ae_title: str, interval_s: float = 1.0,
                 tls: SyslogTlsConfig | None = None) -> None:
        self._ledger, self._client = ledger, SyslogClient(url, tls=tls)
        self._ae_title, self._interval_s = ae_title, interval_s
        self._hostname = socket.gethostname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiws-audit-export", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)
        self.export_pending()  # the 'service stopped' row, when the collector takes it
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.export_pending()

    def export_pending(self) -> int:
        """Send what is pending; returns how many rows went. A failure is logged once until it clears."""
        sent = 0
        try:
            start = int(self._ledger.meta_value(EXPORTED_KEY) or 0)
            for row in self._ledger.audit_after(start):
                self._client.send(syslog_frame(row, audit_message(row, self._ae_title, self._hostname),
                                               self._hostname))
                self._ledger.set_meta_value(EXPORTED_KEY, str(row.id))
                sent += 1
        except (SyslogError, sqlite3.Error) as exc:
            if not self._failing:
                LOGGER.warning("audit export paused: %s (retrying every %.0f s)",
                               exc if isinstance(exc, SyslogError) else f"ledger: {type(exc).__name__}",
                               self._interval_s)
            self._failing = True
            return sent
        if self._failing:
            LOGGER.info("audit export to %s resumed", self._client.url)
        self._failing = False
        return sent

