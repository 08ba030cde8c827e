"""The audit trail: append-only (triggers), hash-chained (an edited, deleted, inserted or cut-off row is named
by ``Ledger.verify_audit`` and ``aiws audit verify``), migrated in place from schema 2, configuration changes
with old and new values, and the RFC 5424 / DICOM PS3.15 A.5 export received by real UDP and TCP listeners."""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiws.audit import AuditExporter
from aiws.config import Config
from aiws.ledger import Ledger
from aiws.ledger.audit import row_hash
from aiws.ledger.schema import SCHEMA_VERSION
from aiws.netconfig import NetworkStore
from peers import free_port

AIWS = str(Path(sys.executable).parent / "aiws")
FRAME = re.compile(rb"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[[^\]]*\]|-) \xef\xbb\xbf(.*)$", re.DOTALL)


def _ledger(tmp_path: Path, n: int = 6) -> Ledger:
    ledger = Ledger(tmp_path / "aiws.db")
    for i in range(n):
        ledger.audit("test", f"action {i + 1}", {"i": i + 1, "study_uid": f"1.2.3.{i + 1}"})
    return ledger


def _tamper(tmp_path: Path, *statements: str) -> None:
    """What someone with the file does: drop the triggers, change rows, commit."""
    con = sqlite3.connect(tmp_path / "aiws.db")
    con.execute("DROP TRIGGER IF EXISTS audit_no_update")
    con.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


def test_intact_chain_verifies_and_sqlite_refuses_changes(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    report = ledger.verify_audit()
    assert (report.ok, report.n_rows) == (True, 6)
    con = sqlite3.connect(tmp_path / "aiws.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE audit SET actor='someone else' WHERE id=2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM audit WHERE id=6")
    con.close()


@pytest.mark.parametrize(("statements", "bad_id", "words"), [
    (["UPDATE audit SET detail='{\"i\": 99, \"study_uid\": \"1.2.3.3\"}' WHERE id=3"], 3, "edited"),
    (["UPDATE audit SET at=at-3600 WHERE id=4"], 4, "edited"),
    (["DELETE FROM audit WHERE id=2"], 2, "missing"),
    (["DELETE FROM audit WHERE id>=5"], 5, "cut off the end"),
])
def test_tampering_is_named_at_the_first_bad_row(tmp_path: Path, statements: list[str], bad_id: int,
                                                 words: str) -> None:
    _ledger(tmp_path).close()
    _tamper(tmp_path, *statements)
    report = Ledger(tmp_path / "aiws.db").verify_audit()
    assert (report.ok, report.bad_id) == (False, bad_id), report
    assert words in report.reason


def test_an_inserted_row_with_a_valid_hash_breaks_the_next_link(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    row3 = ledger.audit_after(2, 1)[0]
    forged = row_hash(4, row3.at + 1, "admin", "nothing happened", "{}", row3.hash)
    ledger.close()
    # the rows after id 3 move up by one (their content unchanged), the forged row 4 goes in between
    _tamper(tmp_path, "UPDATE audit SET id=id+100 WHERE id>3", "UPDATE audit SET id=id-99 WHERE id>100",
            f"INSERT INTO audit VALUES(4, {row3.at + 1!r}, 'admin', 'nothing happened', '{{}}', '{row3.hash}',"
            f" '{forged}')")
    report = Ledger(tmp_path / "aiws.db").verify_audit()
    assert (report.ok, report.bad_id) == (False, 5), report
    assert "row 5 does not follow row 4" in report.reason


def test_rows_appended_after_a_cut_keep_the_gap_visible(tmp_path: Path) -> None:
    _ledger(tmp_path).close()
    _tamper(tmp_path, "DELETE FROM audit WHERE id>=5")
    ledger = Ledger(tmp_path / "aiws.db")  # opening again recreates the triggers
    ledger.audit("service", "service started", {})
    assert ledger.query("SELECT MAX(id) FROM audit")[0][0] == 7
    report = ledger.verify_audit()
    assert (report.ok, report.bad_id) == (False, 5), report
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.query("DELETE FROM audit WHERE id=7")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIWS, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AIWS_ADMIN_TOKEN": "t"})


def test_aiws_audit_verify(tmp_path: Path) -> None:
    _ledger(tmp_path / "var").close()
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    run = _cli("audit", "verify", "--config", str(cfg))
    assert run.returncode == 0, run.stderr
    assert "audit trail intact: 6 rows" in run.stdout
    _tamper(tmp_path / "var", "UPDATE audit SET actor='admin' WHERE id=2")
    run = _cli("audit", "verify", "--config", str(cfg))
    assert run.returncode == 1
    assert "audit trail BROKEN at row 2: row 2: content does not match its hash (edited)" in run.stderr
    used = Ledger(tmp_path / "var" / "aiws.db").list_audit(2)
    assert [(r["action"], r["detail"]["ok"]) for r in used] == [("audit verified", False), ("audit verified", True)]
    empty = tmp_path / "empty.toml"
    empty.write_text(f'[storage]\ndata_dir = "{tmp_path / "nothing"}"\n')
    assert _cli("audit", "verify", "--config", str(empty)).returncode == 2


def test_schema_2_audit_rows_are_chained_in_place(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "aiws.db")
    con.executescript("""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES('schema_version', '2');
        CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
                           action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}');
        CREATE INDEX ix_audit_action ON audit(action);
        INSERT INTO audit(at, actor, action, detail) VALUES(1.5, 'service', 'service started', '{}');
        INSERT INTO audit(at, actor, action, detail) VALUES(2.5, 'cli', 'echo', '{"destination": "pacs"}');
        DELETE FROM audit WHERE id=1;
        INSERT INTO audit(at, actor, action, detail) VALUES(3.5, 'service', 'service stopped', '{}');
    """)
    con.commit()
    con.close()
    ledger = Ledger(tmp_path / "aiws.db")
    assert ledger.meta_value("schema_version") == str(SCHEMA_VERSION) == "4"
    rows = ledger.audit_after(0)
    assert [(r.id, r.at, r.action, r.detail) for r in rows] == [
        (1, 2.5, "echo", {"destination": "pacs"}), (2, 3.5, "service stopped", {})]
    assert rows[1].prev_hash == rows[0].hash and rows[0].prev_hash == "0" * 64
    assert ledger.verify_audit().ok
    ledger.audit("cli", "echo", {})
    assert ledger.verify_audit().n_rows == 3
    with pytest.raises(sqlite3.IntegrityError):
        ledger.query("UPDATE audit SET actor='x'")


def test_configuration_changes_record_old_and_new_values(tmp_path: Path) -> None:
    config = Config.model_validate({"dicom": {"ae_title": "AIWS", "destinations": [
        {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.1", "port": 104}]}})
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    network.set_ae("AIWS2", None, "api:127.0.0.1")
    network.add_destination({"name": "pacs", "ae_title": "PACS", "host": "10.0.0.2", "port": 11112},
                            "api:127.0.0.1", replace=True)
    network.remove_destination("pacs", "cli")
    rows = {r["action"]: r for r in ledger.list_audit()}
    assert rows["local AE changed"]["detail"]["changes"] == [{"key": "ae_title", "old": "AIWS", "new": "AIWS2"}]
    assert rows["local AE changed"]["actor"] == "api:127.0.0.1"
    assert rows["destination changed"]["detail"]["changes"] == [
        {"key": "destinations.pacs.host", "old": "10.0.0.1", "new": "10.0.0.2"},
        {"key": "destinations.pacs.port", "old": 104, "new": 11112}]
    removed = rows["destination removed"]["detail"]["changes"]
    assert [(c["key"], c["old"]["host"], c["new"]) for c in removed] == [("destinations.pacs", "10.0.0.2", None)]
    first = rows["network config loaded from file"]["detail"]["changes"]
    assert {"key": "ae_title", "old": None, "new": "AIWS"} in first
    assert ledger.verify_audit().ok


# -- export ---------------------------------------------------------------------------------------------
@pytest.fixture
def udp_collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def _parse(frame: bytes) -> tuple[int, str, str, ET.Element]:
    """(PRI, timestamp, structured data, XML root) of one RFC 5424 frame."""
    m = FRAME.match(frame)
    assert m, frame[:200]
    pri, timestamp, _host, app, _pid, msgid, sd, msg = m.groups()
    assert (app, msgid) == (b"AIWS", b"IHE+RFC-3881")
    return int(pri), timestamp.decode(), sd.decode(), ET.fromstring(msg.decode("utf-8"))


def _event(root: ET.Element) -> tuple[str, str, str, str]:
    ident = root.find("EventIdentification")
    assert ident is not None
    event_id, type_code = ident.find("EventID"), ident.find("EventTypeCode")
    assert event_id is not None and type_code is not None
    return (event_id.get("csd-code", ""), type_code.get("originalText", ""), ident.get("EventActionCode", ""),
            ident.get("EventOutcomeIndicator", ""))


def _exported_ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "aiws.db")
    ledger.audit("service", "service started", {})
    ledger.record_association({"started_at": "t0", "ended_at": "t1", "calling_ae": "CT1", "called_ae": "AIWS",
                                "peer_ip": "127.0.0.1", "outcome": "released", "received": 3, "duplicates": 0,
                                "failed": 0, "reason": ""})
    ledger.audit("sender", "results sent", {"destination": "pacs", "study_uid": "1.2.3", "files": 3})
    ledger.audit("cli", "destination added", {"name": "pacs", "changes": []})
    ledger.audit("worker", "job failed", {"job_id": 1, "study_uid": "1.2.3", "error": "ModelError: x"})
    ledger.record_association({"started_at": "t2", "ended_at": "t2", "calling_ae": "STRANGER", "called_ae": "AIWS",
                                "peer_ip": "10.9.9.9", "outcome": "rejected", "received": 0, "duplicates": 0,
                                "failed": 0, "reason": "calling AE title not allowed"})
    return ledger


def test_export_over_udp_as_rfc5424_with_dicom_audit_messages(tmp_path: Path, udp_collector: socket.socket) -> None:
    ledger = _exported_ledger(tmp_path)
    port = udp_collector.getsockname()[1]
    exporter = AuditExporter(ledger, f"udp://127.0.0.1:{port}", "AIWS")
    assert exporter.export_pending() == 6
    frames = [udp_collector.recv(65535) for _ in range(6)]
    parsed = [_parse(f) for f in frames]
    assert [sd for _, _, sd, _ in parsed] == [f'[meta sequenceId="{i}"]' for i in range(1, 7)]
    assert [_event(root) for *_, root in parsed] == [
        ("110100", "Application Start", "E", "0"),
        ("110104", "association", "C", "0"),
        ("110104", "results sent", "R", "0"),
        ("110113", "Network Configuration", "C", "0"),
        ("110100", "job failed", "E", "8"),
        ("110113", "Node Authentication", "E", "4"),
    ]
    assert [pri for pri, *_ in parsed] == [85, 85, 85, 85, 84, 84]  # authpriv.notice; warning for a failure
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", parsed[0][1])
    assoc = parsed[1][3]
    parts = [(p.get("UserID"), p.get("UserIsRequestor"), p.get("NetworkAccessPointID"))
             for p in assoc.findall("ActiveParticipant")]
    assert parts[0] == ("CT1", "true", "127.0.0.1") and parts[1][:2] == ("AIWS", "false")
    sent = parsed[2][3].find("ParticipantObjectIdentification")
    assert sent is not None and sent.get("ParticipantObjectID") == "1.2.3"
    assert parsed[0][3].find("AuditSourceIdentification") is not None

    assert exporter.export_pending() == 0  # the position is kept in the ledger
    ledger.audit("service", "service stopped", {})
    assert AuditExporter(ledger, f"udp://127.0.0.1:{port}", "AIWS").export_pending() == 1
    assert _event(_parse(udp_collector.recv(65535))[3])[:2] == ("110100", "Application Stop")


class _TcpCollector:
    """A real TCP syslog listener (RFC 6587 octet counting) collecting frames in a thread."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while chunk := conn.recv(65536):
                with self.lock:
                    self.data += chunk

    def frames(self) -> list[bytes]:
        with self.lock:
            data = self.data
        out = []
        while data:
            length, _, rest = data.partition(b" ")
            out.append(rest[:int(length)])
            data = rest[int(length):]
        return out

    def close(self) -> None:
        self.sock.close()


def test_export_over_tcp_resumes_after_the_collector_was_down(tmp_path: Path) -> None:
    ledger = _exported_ledger(tmp_path)
    port = free_port()  # nothing listens there yet
    exporter = AuditExporter(ledger, f"tcp://127.0.0.1:{port}", "AIWS")
    assert exporter.export_pending() == 0
    assert ledger.meta_value("audit_exported_id") is None
    collector = _TcpCollector(port)
    try:
        assert exporter.export_pending() == 6
        exporter.stop()  # closes the connection: the collector has everything
        collector.thread.join(10)
        frames = collector.frames()
        assert len(frames) == 6
        assert [_event(_parse(f)[3])[0] for f in frames] == ["110100", "110104", "110104", "110113", "110100",
                                                               "110113"]
        assert json.loads(ledger.meta_value("audit_exported_id") or "0") == 6
    finally:
        collector.close()
