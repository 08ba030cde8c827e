"""Audit export over TLS (RFC 5425: octet-counted RFC 5424 frames in a TLS connection) to a real TLS
listener (Python ssl, test PKI from tests/certs.py) that receives and parses the frames."""
from __future__ import annotations

import re
import shutil
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiws.audit import AuditExporter, SyslogClient, SyslogError
from aiws.config import SyslogTlsConfig, config_from_mapping
from aiws.errors import ConfigError
from aiws.ledger import Ledger
from certs import Certificate, issue, make_ca

FRAME = re.compile(rb"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[meta sequenceId=\"\d+\"\]) \xef\xbb\xbf(.*)$", re.S)


@dataclass(frozen=True)
class Pki:
    ca: Certificate
    server: Certificate
    client: Certificate
    other_ca: Certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder / "ca")
    return Pki(ca, issue(ca, folder / "leaf", "collector"), issue(ca, folder / "leaf", "aiws-client"),
               make_ca(folder / "other", "other-ca"))


class TlsCollector:
    """A TLS syslog listener: accepts connections one after another, splits the octet-counted frames."""

    def __init__(self, pki: Pki, require_client_cert: bool = False) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
        if require_client_cert:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(str(pki.ca.cert))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data: list[bytes] = []  # per connection
        self.handshake_errors: list[str] = []
        self.peer_names: list[str] = []
        self.conns: list[ssl.SSLSocket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            raw.settimeout(10)
            try:
                conn = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                with self.lock:
                    self.handshake_errors.append(type(exc).__name__)
                raw.close()
                continue
            cert = conn.getpeercert()
            with self.lock:
                self.peer_names.append(dict(x[0] for x in cert["subject"])["commonName"] if cert else "")
                self.data.append(b"")
                self.conns.append(conn)
                index = len(self.data) - 1
            with conn:
                try:
                    while chunk := conn.recv(65536):
                        with self.lock:
                            self.data[index] += chunk
                except (ssl.SSLError, OSError):
                    continue

    def frames(self) -> list[bytes]:
        """Every frame received, in order; asserts the octet counting is exact."""
        with self.lock:
            streams = list(self.data)
        out = []
        for data in streams:
            while data:
                length, space, rest = data.partition(b" ")
                assert space and length.isdigit(), data[:40]
                assert len(rest) >= int(length), "a frame cut short"
                out.append(rest[:int(length)])
                data = rest[int(length):]
        return out

    def drop_connections(self) -> None:
        """Close the open connections from our side (a collector restarting), keep listening."""
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def close(self) -> None:
        self.drop_connections()
        self.sock.close()


@pytest.fixture
def collector(pki: Pki) -> Iterator[TlsCollector]:
    c = TlsCollector(pki)
    yield c
    c.close()


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "aiws.db")
    ledger.audit("service", "service started", {})
    ledger.audit("user:ml", "model promoted", {"model": "lung_nodules", "old_version": 6, "new_version": 5})
    ledger.audit("sender", "results sent", {"destination": "pacs", "study_uid": "1.2.3", "files": 3})
    return ledger


def _parsed(frame: bytes) -> tuple[int, str, ET.Element]:
    m = FRAME.match(frame)
    assert m, frame[:120]
    return int(m.group(1)), m.group(7).decode(), ET.fromstring(m.group(8).decode("utf-8"))


def _event(root: ET.Element) -> tuple[str, str]:
    ident = root.find("EventIdentification")
    assert ident is not None
    event_id, type_code = ident.find("EventID"), ident.find("EventTypeCode")
    assert event_id is not None and type_code is not None
    return event_id.get("csd-code", ""), type_code.get("originalText", "")


def _wait_frames(collector: TlsCollector, n: int) -> list[bytes]:
    from peers import wait_for

    wait_for(lambda: len(collector.frames()) >= n, timeout=20, interval=0.05, what=f"{n} frames at the collector")
    return collector.frames()


def test_export_over_tls_with_octet_counting(tmp_path: Path, pki: Pki, collector: TlsCollector) -> None:
    ledger = _ledger(tmp_path)
    exporter = AuditExporter(ledger, collector.url, "AIWS", tls=SyslogTlsConfig(ca_file=pki.ca.cert))
    assert exporter.export_pending() == 3
    frames = _wait_frames(collector, 3)
    parsed = [_parsed(f) for f in frames]
    assert [sd for _, sd, _ in parsed] == [f'[meta sequenceId="{i}"]' for i in (1, 2, 3)]
    assert [_event(root) for *_, root in parsed] == [("110100", "Application Start"),
                                                     ("110113", "Software Configuration"),
                                                     ("110104", "results sent")]
    ledger.audit("service", "service stopped", {})
    exporter.stop()  # sends the last row, closes the connection
    assert [_event(_parsed(f)[2]) for f in _wait_frames(collector, 4)][3] == ("110100", "Application Stop")
    assert len(collector.data) == 1  # one connection kept for all rows
    assert ledger.meta_value("audit_exported_id") == "4"


def test_bad_ca_is_a_clear_error_and_nothing_is_lost(tmp_path: Path, pki: Pki, collector: TlsCollector,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    ledger = _ledger(tmp_path)
    ca_file = tmp_path / "collector-ca.pem"
    shutil.copyfile(pki.other_ca.cert, ca_file)  # the wrong CA
    client = SyslogClient(collector.url, tls=SyslogTlsConfig(ca_file=ca_file))
    with pytest.raises(SyslogError, match="certificate not accepted: unable to get local issuer certificate"):
        client.send(b"x")
    exporter = AuditExporter(ledger, collector.url, "AIWS", tls=SyslogTlsConfig(ca_file=ca_file))
    with caplog.at_level("WARNING", logger="aiws.audit"):
        assert exporter.export_pending() == 0
        assert exporter.export_pending() == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "certificate not accepted" in warnings[0]  # once, until it clears
    assert ledger.meta_value("audit_exported_id") is None
    assert collector.frames() == []

    shutil.copyfile(pki.ca.cert, ca_file)  # fixed in place: read again at the next connection
    assert exporter.export_pending() == 3
    frames = _wait_frames(collector, 3)
    assert [_parsed(f)[1] for f in frames] == [f'[meta sequenceId="{i}"]' for i in (1, 2, 3)]
    exporter.stop()


def test_server_name_is_checked(tmp_path: Path, pki: Pki, collector: TlsCollector) -> None:
    wrong = SyslogClient(collector.url, tls=SyslogTlsConfig(ca_file=pki.ca.cert, server_name="collector.example"))
    with pytest.raises(SyslogError, match="Hostname mismatch"):
        wrong.send(b"x")
    right = SyslogClient(collector.url, tls=SyslogTlsConfig(ca_file=pki.ca.cert, server_name="127.0.0.1"))
    right.send(b"hello")
    right.close()
    assert _wait_frames(collector, 1) == [b"hello"]


def test_client_certificate_for_a_collector_that_asks(tmp_path: Path, pki: Pki) -> None:
    collector = TlsCollector(pki, require_client_cert=True)
    try:
        ledger = _ledger(tmp_path)
        without = AuditExporter(ledger, collector.url, "AIWS", tls=SyslogTlsConfig(ca_file=pki.ca.cert))
        for _ in range(3):  # TLS 1.3 refuses the missing certificate after the handshake: never a frame lost
            assert without.export_pending() == 0
        assert ledger.meta_value("audit_exported_id") is None and collector.frames() == []
        assert len(collector.handshake_errors) == 3
        with_cert = AuditExporter(ledger, collector.url, "AIWS", tls=SyslogTlsConfig(
            ca_file=pki.ca.cert, cert_file=pki.client.cert, key_file=pki.client.key))
        assert with_cert.export_pending() == 3
        assert len(_wait_frames(collector, 3)) == 3
        assert "aiws-client" in collector.peer_names
        with_cert.stop()
    finally:
        collector.close()


def test_unreadable_certificate_files_are_named(tmp_path: Path, collector: TlsCollector) -> None:
    missing = SyslogClient(collector.url, tls=SyslogTlsConfig(ca_file=tmp_path / "nope.pem"))
    with pytest.raises(SyslogError, match="audit.tls.ca_file: cannot load"):
        missing.send(b"x")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    bad_client = SyslogClient(collector.url, tls=SyslogTlsConfig(cert_file=junk, key_file=junk))
    with pytest.raises(SyslogError, match="audit.tls.cert_file / key_file: cannot load"):
        bad_client.send(b"x")


def test_configuration() -> None:
    config = config_from_mapping({"audit": {"syslog": "tls://collector.example:6514",
                                            "tls": {"ca_file": "/etc/aiws/ca.pem", "server_name": "collector"}}})
    assert config.audit.tls.server_name == "collector"
    with pytest.raises(ConfigError, match="audit.tls: cert_file and key_file go together"):
        config_from_mapping({"audit": {"syslog": "tls://h:6514", "tls": {"cert_file": "/c.pem"}}})
    with pytest.raises(ConfigError, match="audit.syslog: .*tls://host:port"):
        config_from_mapping({"audit": {"syslog": "tcps://h:6514"}})
    with pytest.raises(ConfigError, match="audit.tls.verify: unknown key"):
        config_from_mapping({"audit": {"tls": {"verify": False}}})


def test_collector_restart_between_batches_loses_nothing(tmp_path: Path, pki: Pki, collector: TlsCollector) -> None:
    ledger = _ledger(tmp_path)
    exporter = AuditExporter(ledger, collector.url, "AIWS", tls=SyslogTlsConfig(ca_file=pki.ca.cert))
    assert exporter.export_pending() == 3
    _wait_frames(collector, 3)
    collector.drop_connections()
    for i in range(3):
        ledger.audit("worker", "job done", {"job_id": i})
    assert exporter.export_pending() == 3  # on a new connection, not into the closed one
    frames = _wait_frames(collector, 6)
    assert [_parsed(f)[1] for f in frames] == [f'[meta sequenceId="{i}"]' for i in range(1, 7)]
    assert len(collector.data) == 2
    exporter.stop()
