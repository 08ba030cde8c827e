"""The ledger on PostgreSQL (a real server started here, tests/pg.py) beside SQLite: the same state machines,
audit chain and statistics on both backends; claims that several processes share safely (a claim of a live
process is never taken again, one of a process killed with SIGKILL is); alembic migrations that refuse a
newer database; the two schemas with the same tables and columns; the SQL translation itself."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from aiws.ledger import InstanceRow, Ledger, NewJob, NewResult, QuarantineItem
from aiws.ledger.pg import head_revision
from aiws.ledger.pg_sql import Catalog, translate
from aiws.ledger.schema import SCHEMA_VERSION, SchemaTooNew
from peers import free_port
from pg import PgServer

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    """One ledger database: ``open()`` connects a new Ledger (as another process would), ``raw`` runs SQL
    beside the ledger (what someone with database access does)."""

    name: str
    open: Callable[[], Ledger]
    raw: Callable[[list[str]], None]


def _sqlite_raw(path: Path) -> Callable[[list[str]], None]:
    def run(statements: list[str]) -> None:
        con = sqlite3.connect(path)
        con.execute("DROP TRIGGER IF EXISTS audit_no_update")
        con.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for sql in statements:
            con.execute(sql)
        con.commit()
        con.close()
    return run


def _pg_raw(url: str) -> Callable[[list[str]], None]:
    def run(statements: list[str]) -> None:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            for sql in statements:
                con.execute(sql)
            con.execute("ALTER TABLE audit ENABLE TRIGGER USER")
    return run


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[Ledger] = []

    def track(ledger: Ledger) -> Ledger:
        opened.append(ledger)
        return ledger

    if request.param == "sqlite":
        path = tmp_path / "aiws.db"
        yield Backend("sqlite", lambda: track(Ledger(path)), _sqlite_raw(path))
    else:
        url = request.getfixturevalue("pg_server").new_database()
        yield Backend("postgres", lambda: track(Ledger(tmp_path / "aiws.db", url)), _pg_raw(url))
    for ledger in opened:
        ledger.close()


def _row(study: str, sop: str, t: float, size: int = 10) -> InstanceRow:
    return InstanceRow(sop, study, "1.2.3", "1.2.840.10008.5.1.4.1.1.2", "CT", "1.2.840.10008.1.2.1",
                       "/x", size, "PACS", "127.0.0.1", t)


def _study_with_job(ledger: Ledger, study: str = "1.1", send_to: tuple[str, ...] = ("pacs",)) -> None:
    ledger.record_instance(_row(study, f"{study}.1", 1.0))
    assert ledger.complete_study(study, 1.0, [NewJob("echo_summary", ("1.2.3",), send_to)], 2.0)


# -- the state machines on both backends ----------------------------------------------------------------
def test_instances_and_studies(backend: Backend) -> None:
    ledger = backend.open()
    assert ledger.record_instance(_row("1.1", "1.1.1", 100.0, size=3_000_000_000))  # a 64-bit byte count
    assert not ledger.record_instance(_row("1.1", "1.1.1", 101.0))
    assert ledger.studies_quiet_since(100.0) == [("1.1", 100.0)]
    assert ledger.complete_study("1.1", 100.0, [NewJob("echo_summary", ("1.2.3",), ())], 131.0)
    assert not ledger.complete_study("1.1", 100.0, [], 132.0)  # already complete
    ledger.record_instance(_row("1.1", "1.1.2", 90.0))  # older than the last: MAX(last_received_at, ?) keeps 100
    study = ledger.get_study("1.1")
    assert study is not None and (study.state, study.generation, study.n_instances) == ("receiving", 2, 2)
    assert study.last_received_at == 100.0
    assert [s.study_uid for s in ledger.list_studies("receiving")] == ["1.1"]
    assert ledger.counts()["instances"] == {"total": 2}
    assert ledger.meta_value("received_bytes_total") == str(3_000_000_010)
    assert ledger.meta_value("schema_version") == str(SCHEMA_VERSION)


def test_completion_refused_when_an_instance_arrived_meanwhile(backend: Backend) -> None:
    ledger = backend.open()
    ledger.record_instance(_row("1.1", "1.1.1", 100.0))
    ledger.record_instance(_row("1.1", "1.1.2", 105.0))
    assert not ledger.complete_study("1.1", 100.0, [], 140.0)
    assert ledger.get_study("1.1").state == "receiving"  # type: ignore[union-attr]


def test_a_claimed_job_is_exclusive_and_finishes_with_its_sends(backend: Backend) -> None:
    ledger, other = backend.open(), backend.open()
    _study_with_job(ledger)
    job = ledger.claim_job("w1", 3.0)
    assert job is not None and (job.state, job.attempts, job.worker) == ("running", 1, "w1")
    assert other.claim_job("w2", 3.0) is None
    res = [NewResult("sr", "9.9", "9.8", "1.2.840.10008.5.1.4.1.1.88.34", "/r1"),
           NewResult("sc", "9.7", "9.8", "1.2.840.10008.5.1.4.1.1.7", "/r2")]
    assert ledger.finish_job(job.id, res, {"timings_s": {"network": 2.0}}, [("pacs", 2)], 10.0)
    assert [r.path for r in other.results_of_job(job.id)] == ["/r1", "/r2"]
    assert [r.sop_instance_uid for r in other.results_of_study("1.1")] == ["9.9", "9.7"]
    sends = other.list_sends(job_id=job.id)
    assert [(s.destination, s.state, s.n_files) for s in sends] == [("pacs", "pending", 2)]
    send = other.claim_send(11.0)
    assert send is not None and ledger.claim_send(11.0) is None
    other.send_failed(send.id, "refused", 20.0, 12.0)
    assert ledger.claim_send(13.0) is None  # not due before 20
    send = ledger.claim_send(21.0)
    assert send is not None and send.attempts == 2
    ledger.send_failed(send.id, "refused again", None, 22.0)
    assert other.dead_letter_destinations() == ["pacs"]
    assert other.retry_send(send.id, "admin", 23.0)
    send = other.claim_send(24.0)
    assert send is not None
    other.send_done(send.id, 25.0)
    assert other.get_send(send.id).state == "done"  # type: ignore[union-attr]
    assert other.dead_letter_destinations() == []
    assert other.counts()["sends"] == {"done": 1}


def test_a_failed_job_is_retried_then_fails_for_good(backend: Backend) -> None:
    ledger = backend.open()
    _study_with_job(ledger)
    job = ledger.claim_job("w", 3.0)
    assert job is not None
    ledger.fail_job(job.id, "retrying: busy", 50.0, 4.0)
    assert ledger.claim_job("w", 10.0) is None
    job = ledger.claim_job("w", 50.0)
    assert job is not None and job.attempts == 2
    ledger.fail_job(job.id, "broken", None, 51.0)
    assert ledger.get_job(job.id).state == "failed"  # type: ignore[union-attr]
    assert [a["action"] for a in ledger.list_audit(10, "job")] == ["job failed", "job created"]


def test_newer_generation_supersedes_sending_of_older_results(backend: Backend) -> None:
    ledger = backend.open()
    _study_with_job(ledger)
    old = ledger.claim_job("w", 3.0)
    ledger.record_instance(_row("1.1", "1.1.2", 4.0))
    ledger.complete_study("1.1", 4.0, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], 5.0)
    res = [NewResult("sc", "9.9", "9.8", "1.2.840.10008.5.1.4.1.1.7", "/r")]
    assert old is not None and not ledger.finish_job(old.id, res, {}, [("pacs", 1)], 6.0)
    assert ledger.list_sends() == []
    new = ledger.claim_job("w", 7.0)
    assert new is not None and ledger.finish_job(new.id, res, {}, [("pacs", 1)], 8.0)
    assert [s.state for s in ledger.list_sends()] == ["pending"]


def test_quarantine_refusals_and_network_configuration(backend: Backend) -> None:
    ledger = backend.open()
    ledger.record_instance(_row("1.1", "1.1.1", 1.0))
    item = QuarantineItem("1.1.1", "1.2.3", "/x", "/q/1.1.1", "unreadable: InvalidDicomError")
    assert ledger.quarantine_instances("1.1", [item], 1.0, 2.0)
    study = ledger.get_study("1.1")
    assert study is not None and (study.state, study.n_instances) == ("error", 0)
    assert "quarantined 1 instance" in study.error
    assert ledger.quarantine_pending_moves() == {"/x": "/q/1.1.1"}
    ledger.record_refusal("conflict", {"sop_instance_uid": "1.9"})
    ledger.record_refusal("conflict", {"sop_instance_uid": "1.8"})
    ledger.record_refusal("gone", {"sop_instance_uid": "1.7"})
    assert ledger.refusal_counts() == {"conflict": 2, "gone": 1}  # json_extract on both
    assert ledger.save_network({"ae_title": "AIWS"}, "h1", "admin", "config changed", {}) == 1
    assert ledger.save_network({"ae_title": "AIWS2"}, "h1", "admin", "config changed", {}) == 2
    assert ledger.network_doc() == ({"ae_title": "AIWS2"}, "h1", 2)
    changes = ledger.list_audit(1, "config")[0]["detail"]["changes"]
    assert changes == [{"key": "ae_title", "old": "AIWS", "new": "AIWS2"}]
    ledger.note_scheduler_error("sending", "OSError", 5.0)
    ledger.note_scheduler_error("sending", "OSError", 6.0)
    assert ledger.scheduler_errors() == (2, 6.0, "sending: OSError")


def test_duration_histograms(backend: Backend) -> None:
    ledger = backend.open()
    for i, network_s in enumerate((0.2, 4.2, 40.0)):
        _study_with_job(ledger, f"1.{i}", ())
        job = ledger.claim_job("w", 3.0)
        assert job is not None
        ledger.finish_job(job.id, [], {"pipeline_version": "m1", "timings_s": {"network": network_s}}, [], 60.0)
    (inference,) = ledger.histograms("inference")
    assert inference.labels == ("m1", "network") and inference.count == 3
    assert inference.sum == pytest.approx(44.4)
    assert inference.cumulative[1] == 1 and inference.cumulative[-1] == 3  # 0.25 s bucket, +Inf
    job_wall = {h.labels: h for h in ledger.histograms("job_duration")}[("echo_summary", "job")]
    assert (job_wall.count, job_wall.sum) == (3, pytest.approx(171.0))


def test_the_audit_chain_verifies_refuses_changes_and_names_tampering(backend: Backend) -> None:
    ledger = backend.open()
    for i in range(6):
        ledger.audit("test", f"action {i + 1}", {"i": i + 1})
    report = ledger.verify_audit()
    assert (report.ok, report.n_rows) == (True, 6)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.query("UPDATE audit SET actor='someone else' WHERE id=2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.query("DELETE FROM audit WHERE id=6")
    backend.raw(["UPDATE audit SET at=at-3600 WHERE id=4"])
    report = backend.open().verify_audit()
    assert (report.ok, report.bad_id) == (False, 4) and "edited" in report.reason
    backend.raw(["DELETE FROM audit WHERE id>=4"])
    report = backend.open().verify_audit()
    assert (report.ok, report.bad_id) == (False, 4) and "cut off the end" in report.reason


def test_accounts_operator_actions_and_routing_rules_run_on_both(backend: Backend) -> None:
    """Code other modules write against the Ledger (console accounts, operator actions, the live routing rules)
    runs unchanged on PostgreSQL: its SQLite-dialect statements go through the one translation."""
    from aiws.api import accounts
    from aiws.config import config_from_mapping
    from aiws.ledger.actions import ActionRefused
    from aiws.netconfig import NetworkStore
    from aiws.routestore import RouteStore

    ledger = backend.open()
    admin = accounts.create_account(ledger, "alice", "admin", "correct horse battery")
    assert accounts.verify_password(ledger, "alice", "correct horse battery") == admin
    assert accounts.verify_password(ledger, "alice", "wrong") is None
    token = accounts.issue_token(ledger, "alice", "radiologist", "ci")
    principal = accounts.principal_of_token(ledger, token)
    assert principal is not None and (principal.name, principal.role.value) == ("alice", "radiologist")
    session = accounts.open_session(ledger, admin, 600.0, "127.0.0.1")
    found = accounts.session_principal(ledger, session.session_id)
    assert found is not None and found[1] == session.csrf
    accounts.set_disabled(ledger, "alice", True, "cli")
    assert accounts.session_principal(ledger, session.session_id) is None
    accounts.record_login_failure(ledger, "alice", "10.0.0.9", 300.0)
    assert accounts.login_blocked_for(ledger, "alice", "10.0.0.9", 1, 300.0) > 0

    _study_with_job(ledger)
    job = ledger.claim_job("w", 3.0)
    assert job is not None
    ledger.fail_job(job.id, "broken", None, 4.0)
    ledger.retry_job(job.id, "alice", 5.0)
    with pytest.raises(ActionRefused):
        ledger.retry_job(job.id, "alice", 6.0)  # pending now: only a failed job can be retried
    job = ledger.claim_job("w", 7.0)
    assert job is not None and job.attempts == 1
    res = [NewResult("sc", "9.9", "9.8", "1.2.840.10008.5.1.4.1.1.7", "/r")]
    assert ledger.finish_job(job.id, res, {}, [("pacs", 1)], 8.0)
    redone = ledger.reprocess_study("1.1", "alice", 9.0)
    assert redone.generation == 2 and redone.superseded_jobs == (job.id,)

    config = config_from_mapping({"dicom": {"destinations": [
        {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242}]},
        "routes": [{"pipeline": "echo_summary", "send_to": ["pacs"], "match": {"Modality": "CT"}}]})
    network = NetworkStore(ledger)
    network.seed(config)
    store = RouteStore(ledger, config, network)
    store.seed(config)
    assert [r.pipeline for r in store.current().routes] == ["echo_summary"]
    assert ledger.verify_audit().ok


def test_many_claimers_take_each_job_exactly_once(backend: Backend) -> None:
    setup = backend.open()
    for i in range(60):
        setup.record_instance(_row(f"2.{i}", f"2.{i}.1", 1.0))
        setup.complete_study(f"2.{i}", 1.0, [NewJob("echo_summary", ("1.2.3",), ())], 2.0)
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        ledger = backend.open()  # its own connections, as another node has
        while (job := ledger.claim_job(name, 3.0)) is not None:
            assert ledger.finish_job(job.id, [], {}, [], 4.0)
            with lock:
                taken.append((name, job.id))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ids = [job_id for _, job_id in taken]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 60
    assert setup.counts()["jobs"] == {"done": 60}
    assert setup.verify_audit().ok  # 60 "job created" and 60 "job done" rows, chained in one order


# -- PostgreSQL: claims held by live processes, swept when they die -------------------------------------
CLAIMER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from aiws.ledger import Ledger
    ledger = Ledger(Path("unused"), sys.argv[1])
    job = ledger.claim_job("doomed", time.time())
    send = ledger.claim_send(time.time())
    print(job.id, send.id, flush=True)
    time.sleep(600)
""")


def _wait(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_claims_of_a_killed_process_are_swept_and_a_live_ones_are_not(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    ledger = Ledger(tmp_path / "aiws.db", url)
    _study_with_job(ledger)
    job = ledger.claim_job("w", 3.0)
    assert job is not None and ledger.finish_job(job.id, [], {}, [("pacs", 0)], 4.0)
    _study_with_job(ledger, "1.2")
    proc = subprocess.Popen([sys.executable, "-c", CLAIMER, url], stdout=subprocess.PIPE, text=True, cwd=PROJECT,
                            env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        assert proc.stdout is not None
        job_id, send_id = (int(x) for x in proc.stdout.readline().split())
        assert ledger.requeue_running_jobs() == 0 and ledger.requeue_sending() == 0  # held by a live process
        assert ledger.get_job(job_id).state == "running"  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert _wait(lambda: ledger.requeue_running_jobs() == 1)  # PostgreSQL dropped the dead session's locks
    assert _wait(lambda: ledger.requeue_sending() == 1)
    again = ledger.claim_job("w", 5.0)
    assert again is not None and (again.id, again.attempts) == (job_id, 2)
    assert ledger.get_send(send_id).state == "pending"  # type: ignore[union-attr]


def test_a_process_that_lost_its_claim_records_nothing(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    first, second = Ledger(tmp_path / "a.db", url), Ledger(tmp_path / "b.db", url)
    _study_with_job(first)
    job = first.claim_job("w1", 3.0)
    assert job is not None
    with psycopg.connect(url, autocommit=True) as admin:  # the first node's claims connection is cut
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype='advisory' AND objid=%s"
                      " AND objsubid=2", (job.id,))
    assert _wait(lambda: second.requeue_running_jobs() == 1)
    taken = second.claim_job("w2", 4.0)
    assert taken is not None and taken.id == job.id
    assert not first.finish_job(job.id, [], {}, [("pacs", 1)], 5.0)  # fenced: the job is the second node's
    first.fail_job(job.id, "late", None, 5.0)
    row = second.get_job(job.id)
    assert row is not None and (row.state, row.worker) == ("running", "w2")
    assert second.finish_job(job.id, [], {}, [("pacs", 1)], 6.0)
    assert len(second.list_sends()) == 1
    first.close()
    second.close()


def test_aiws_audit_verify_on_postgresql_and_an_unreachable_one(pg_server: PgServer, tmp_path: Path) -> None:
    aiws = str(Path(sys.executable).parent / "aiws")
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    url = pg_server.new_database()
    ledger = Ledger(tmp_path / "unused", url)
    ledger.audit("test", "one", {})
    ledger.close()
    run = subprocess.run([aiws, "audit", "verify", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "AIWS_LEDGER_URL": url})
    assert run.returncode == 0, run.stderr
    assert "audit trail intact: 1 rows" in run.stdout
    down = f"postgresql://aiws:s3cret@127.0.0.1:{free_port()}/aiws"
    run = subprocess.run([aiws, "audit", "verify", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "AIWS_LEDGER_URL": down})
    assert run.returncode == 1
    assert "cannot connect" in run.stderr and "s3cret" not in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


# -- schema: alembic, versions, parity with SQLite ------------------------------------------------------
def _sqlite_columns(path: Path) -> dict[str, set[str]]:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                            " AND name NOT LIKE 'sqlite_%'")]
        return {t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        con.close()


def test_both_schemas_have_the_same_tables_and_columns(pg_server: PgServer, tmp_path: Path) -> None:
    """A schema change is a SQLite migration (aiws.ledger.schema) AND an alembic revision: this test fails
    until both are written (tables, columns, and the named ix_ indexes)."""
    Ledger(tmp_path / "aiws.db").close()
    url = pg_server.new_database()
    Ledger(tmp_path / "unused", url).close()
    with psycopg.connect(url) as con:
        catalog = Catalog.read(con)
    pg_tables = {t: set(c) for t, c in catalog.columns.items() if t != "alembic_version"}
    assert pg_tables == _sqlite_columns(tmp_path / "aiws.db")
    with psycopg.connect(url) as con:
        triggers = {r[0] for r in con.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        indexes = {r[0] for r in con.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'"
                                             " AND indexname LIKE 'ix_%'")}
    assert {"audit_no_update", "audit_no_delete"} <= triggers
    con = sqlite3.connect(tmp_path / "aiws.db")
    assert indexes == {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                                 " AND name LIKE 'ix_%'")}
    con.close()


def test_the_head_revision_is_the_sqlite_schema_version() -> None:
    import importlib.util

    versions = PROJECT / "aiws" / "ledger" / "alembic" / "versions"
    (module_file,) = [p for p in versions.glob(f"{head_revision()}_*.py")]
    spec = importlib.util.spec_from_file_location("head_revision", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SCHEMA_VERSION == SCHEMA_VERSION


def test_opening_again_migrates_nothing_and_a_newer_database_is_refused(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    Ledger(tmp_path / "x", url).audit("test", "kept", {})
    ledger = Ledger(tmp_path / "x", url)  # at head already
    assert [a["action"] for a in ledger.list_audit()] == ["kept"]
    ledger.close()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE alembic_version SET version_num='9999'")
    with pytest.raises(SchemaTooNew, match=r"schema revision 9999 is newer than this AIWS understands"):
        Ledger(tmp_path / "x", url)
    with psycopg.connect(url, autocommit=True) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_nodes_starting_together_migrate_once(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Ledger(tmp_path / "x", url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with psycopg.connect(url) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall() == [(str(SCHEMA_VERSION),)]


# -- the translation ------------------------------------------------------------------------------------
CATALOG = Catalog(
    columns={"meta": ("key", "value"), "results": ("id", "job_id", "kind", "sop_instance_uid", "path"),
             "duration_totals": ("metric", "k1", "k2", "count", "sum"), "studies": ("study_uid", "state")},
    keys={"meta": (("key",),), "results": (("id",), ("job_id", "sop_instance_uid")),
          "duration_totals": (("metric", "k1", "k2"),), "studies": (("study_uid",),)},
    identity=frozenset({"results"}),
)


@pytest.mark.parametrize(("sqlite_sql", "pg_sql"), [
    ("SELECT * FROM studies WHERE state=? AND note='why?' LIMIT ?",
     "SELECT * FROM studies WHERE state=%s AND note='why?' LIMIT %s"),
    ("INSERT OR IGNORE INTO studies(study_uid, state) VALUES(?, 'receiving')",
     "INSERT INTO studies(study_uid, state) VALUES(%s, 'receiving') ON CONFLICT DO NOTHING"),
    ("INSERT OR REPLACE INTO results(job_id, kind, sop_instance_uid, path) VALUES(?,?,?,?)",
     "INSERT INTO results(job_id, kind, sop_instance_uid, path) VALUES(%s,%s,%s,%s) ON CONFLICT (job_id,"
     " sop_instance_uid) DO UPDATE SET kind=excluded.kind, path=excluded.path RETURNING id"),
    ("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=CAST(CAST(value AS INTEGER)"
     " + ? AS TEXT)",
     "INSERT INTO meta(key, value) VALUES(%s, %s) ON CONFLICT(key) DO UPDATE SET value=CAST(CAST(meta.value AS"
     " BIGINT) + %s AS TEXT)"),
    ("INSERT INTO duration_totals VALUES(?,?,?,1,?) ON CONFLICT DO UPDATE SET count=count+1, sum=sum+excluded.sum",
     "INSERT INTO duration_totals VALUES(%s,%s,%s,1,%s) ON CONFLICT (metric, k1, k2) DO UPDATE SET"
     " count=duration_totals.count+1, sum=duration_totals.sum+excluded.sum"),
    ("UPDATE studies SET last_received_at=MAX(last_received_at, ?), n=MIN(a, MAX(b, c)) WHERE x LIKE '100%'",
     "UPDATE studies SET last_received_at=GREATEST(last_received_at, %s), n=LEAST(a, GREATEST(b, c))"
     " WHERE x ILIKE '100%%'"),
    ("SELECT MAX(id), json_extract(detail, '$.kind.sub'), IFNULL(a, 0) FROM audit GROUP BY 2",
     "SELECT MAX(id), (CAST(detail AS JSONB) #>> '{kind,sub}'), COALESCE(a, 0) FROM audit GROUP BY 2"),
    ("SELECT group_concat(name, '; ') FROM t WHERE a == 1",
     "SELECT STRING_AGG(CAST(name AS TEXT), '; ') FROM t WHERE a = 1"),
])
def test_sqlite_statements_become_postgresql_ones(sqlite_sql: str, pg_sql: str) -> None:
    assert translate(sqlite_sql, CATALOG)[0] == pg_sql
