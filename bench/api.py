"""Status page and API latency (p50, p95) with 10 000 studies and 50 000 jobs in the ledger, SQLite and
PostgreSQL side by side.

A ledger is filled in a temporary data_dir (SQL matching :mod:`aiws.ledger.schema`, all rows in one
transaction; the audit rows hash-chained with :func:`aiws.ledger.audit.row_hash`), a real ``aiws serve``
is started on it (``tests/peers.AiwsProcess``, workers off so nothing changes the rows while we read),
and each endpoint is asked N times over one keep-alive httpx client.

Baseline, measured in the same run: the same requests to a service on a near-empty ledger (1 study,
5 jobs: the study page needs a study to show); the ratio says how latency grows with the rows.
Then the same rows in a PostgreSQL ledger (``[ledger] url``; a private PostgreSQL 15 started by tests/pg.py with
its default durability, or ``--pg-url``) against the same requests: the ratio PostgreSQL / SQLite, both full.

    .venv/bin/python bench/api.py [--studies 10000] [--jobs-per-study 5] [-n 100] [--no-postgres]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from aiws.ledger import Ledger
from aiws.ledger.audit import GENESIS, HEAD_KEY, row_hash
from peers import AiwsProcess
from pg import PgServer, why_not_available

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""

JOB_STATES = ("done", "done", "done", "failed", "superseded")
PIPELINES = ("ct_lung_nodule", "cxr_triage", "ct_brain_bleed")
DESCRIPTIONS = ("CT THORAX", "CT CALCIUM SCORE", "CT ABDOMEN PELVIS", "CT HEAD")


def uid(kind: int, n: int) -> str:
    return f"1.2.826.0.1.3680043.10.999.{kind}.{n}"


def fill(db: Path, n_studies: int, jobs_per_study: int, n_audit: int, url: str | None = None) -> str:
    """Rows for *n_studies* studies (3 instances, *jobs_per_study* jobs each, a result and a send per done
    job, an association per study) and *n_audit* chained audit rows; returns a study UID to look up.
    With *url*, into that PostgreSQL ledger (the same statements: the ledger translates them)."""
    ledger = Ledger(db, url)  # creates the schema at its current version
    now = time.time() - 86400
    with ledger.transaction() as con:
        studies, instances, jobs, results, sends, assocs = [], [], [], [], [], []
        job_id = 0
        for s in range(n_studies):
            t = now + s
            state = "error" if s % 50 == 0 else "complete"
            study = uid(1, s)
            studies.append((study, state, t, t + 5, t + 60, 3, "CT1", jobs_per_study,
                            "ValueError" if state == "error" else "", f"ACC{s:06d}", "CT" if s % 3 else "CT/SR",
                            DESCRIPTIONS[s % len(DESCRIPTIONS)]))
            for i in range(3):
                instances.append((uid(3, s * 3 + i), study, uid(2, s), "1.2.840.10008.5.1.4.1.1.2", "CT",
                                  "1.2.840.10008.1.2.1", f"spool/{s}/{i}.dcm", 524288, "CT1", "127.0.0.1", t + i))
            for j in range(jobs_per_study):
                job_id += 1
                jstate = JOB_STATES[j % len(JOB_STATES)]
                jobs.append((job_id, study, 1, PIPELINES[j % len(PIPELINES)], json.dumps([uid(2, s)]),
                             json.dumps(["pacs"]), jstate, 1, t + 60, t + 61, t + 70,
                             "RuntimeError" if jstate == "failed" else ""))
                if jstate == "done":
                    results.append((job_id, "seg", uid(4, job_id), uid(5, job_id), "1.2.840.10008.5.1.4.1.1.66.4",
                                    f"out/{job_id}.dcm", t + 70))
                    dead = job_id % 97 == 0
                    sends.append((job_id, "pacs", "dead" if dead else "done", 5 if dead else 1, 1,
                                  "ConnectionRefusedError" if dead else "", t + 70, t + 75, None if dead else t + 75))
            assocs.append((time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)),
                           time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + 5)), "CT1", "AIWS", "127.0.0.1",
                           "released", 3, 0, 0))
        con.executemany("INSERT INTO studies(study_uid, state, first_received_at, last_received_at, completed_at,"
                        " n_instances, calling_ae, n_jobs, error, accession, modality, description)"
                        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", studies)
        con.executemany("INSERT INTO instances(sop_instance_uid, study_uid, series_uid, sop_class_uid, modality,"
                        " transfer_syntax, path, size_bytes, calling_ae, peer_ip, received_at)"
                        " VALUES(?,?,?,?,?,?,?,?,?,?,?)", instances)
        con.executemany("INSERT INTO jobs(id, study_uid, generation, pipeline, series_uids, send_to, state, attempts,"
                        " created_at, started_at, finished_at, error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", jobs)
        con.executemany("INSERT INTO results(job_id, kind, sop_instance_uid, series_uid, sop_class_uid, path,"
                        " created_at) VALUES(?,?,?,?,?,?,?)", results)
        con.executemany("INSERT INTO sends(job_id, destination, state, attempts, n_files, last_error, created_at,"
                        " updated_at, done_at) VALUES(?,?,?,?,?,?,?,?,?)", sends)
        con.executemany("INSERT INTO associations(started_at, ended_at, calling_ae, called_ae, peer_ip, outcome,"
                        " received, duplicates, failed) VALUES(?,?,?,?,?,?,?,?,?)", assocs)
        prev, audit = GENESIS, []
        for a in range(1, n_audit + 1):
            at, detail = now + a, json.dumps({"job_id": a}, sort_keys=True)
            digest = row_hash(a, at, "scheduler", "job.done", detail, prev)
            audit.append((a, at, "scheduler", "job.done", detail, prev, digest))
            prev = digest
        con.executemany("INSERT INTO audit(id, at, actor, action, detail, prev_hash, hash) VALUES(?,?,?,?,?,?,?)",
                        audit)
        if audit:
            con.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (HEAD_KEY, f"{n_audit} {prev}"))
    if url:  # the jobs were given their ids: the identity goes on after them; then the state autovacuum
        # reaches after a bulk load (statistics, and the visibility map that index-only counts need)
        ledger.query("SELECT setval(pg_get_serial_sequence('jobs', 'id'), (SELECT MAX(id) FROM jobs))")
        ledger.query("VACUUM ANALYZE")
    ledger.close()
    return uid(1, n_studies // 2)


def endpoints(study: str) -> list[str]:
    return ["/console/status", "/api/studies", "/api/studies?state=error", f"/api/studies/{study}", "/api/jobs",
            "/api/jobs?state=failed", "/api/sends", "/api/audit", "/metrics", "/health",
            "/console/", "/console/?q=acc005000", "/console/?state=error&modality=SR&page=3", "/console/?q=head&page=40",
            f"/console/studies/{study}"]


def measure(targets: dict[str, tuple[str, list[str]]], n: int) -> dict[str, list[tuple[float, float]]]:
    """p50 and p95 in ms per target and path (in the order of its paths). The paths and the targets are
    interleaved request by request, so that load from other processes hits every column alike."""
    samples: dict[str, list[list[float]]] = {name: [[] for _ in paths] for name, (_, paths) in targets.items()}
    clients = {name: httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer test-token"})
               for name, (url, _) in targets.items()}
    try:
        for name, (_, paths) in targets.items():  # warm-up (template compile, first connection per thread)
            for p in paths:
                for _ in range(3):
                    clients[name].get(p).raise_for_status()
        n_paths = len(next(iter(targets.values()))[1])
        for _ in range(n):
            for i in range(n_paths):
                for name, (_, paths) in targets.items():
                    t0 = time.perf_counter()
                    clients[name].get(paths[i]).raise_for_status()
                    samples[name][i].append((time.perf_counter() - t0) * 1000)
    finally:
        for client in clients.values():
            client.close()
    return {name: [(statistics.median(v), statistics.quantiles(v, n=20)[18]) for v in per_path]
            for name, per_path in samples.items()}


def start(stack: ExitStack, workdir: Path, rows: tuple[int, int, int], url: str | None = None) -> tuple[str, list[str]]:
    """Fill a ledger with *rows* (studies, jobs per study, audit rows), start ``aiws serve`` on it (stopped by
    *stack*); returns its URL and the endpoints to ask."""
    workdir.mkdir()
    aiws = AiwsProcess(workdir, CONFIG, env={"AIWS_WORKERS": "0", **({"AIWS_LEDGER_URL": url} if url else {})})
    t0 = time.perf_counter()
    study = fill(aiws.data_dir / "aiws.db", *rows, url)
    filled = time.perf_counter() - t0
    aiws.start()
    stack.callback(aiws.stop)
    db = Ledger(aiws.data_dir / "aiws.db", url)
    counts = {t: int(db.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("studies", "jobs", "sends", "audit")}
    db.close()
    print(f"  ledger: {counts} (filled in {filled:.1f} s)")
    return aiws.url, endpoints(study)


def postgres_url(stack: ExitStack, args: argparse.Namespace) -> str | None:
    """*args.pg_url*, or a new database on a private server (default durability: fsync on), or None."""
    if args.pg_url:
        return str(args.pg_url)
    reason = why_not_available()
    if reason:
        print(f"PostgreSQL not measured: {reason}")
        return None
    server = PgServer(durable=True).start()
    stack.callback(server.stop)
    print(f"  (a private PostgreSQL on 127.0.0.1:{server.port}, default durability)")
    return server.new_database()


def table(title: str, heads: tuple[str, str], paths: list[str], base: list[tuple[float, float]],
          ours: list[tuple[float, float]]) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':32s} {heads[0] + ' p50':>9s} {heads[0] + ' p95':>9s} {heads[1] + ' p50':>8s} "
          f"{heads[1] + ' p95':>8s} {'x p50':>6s} {'x p95':>6s}")
    for path, (b50, b95), (f50, f95) in zip(paths, base, ours):
        name = "/api/studies/{uid}" if path.startswith("/api/studies/") else path
        name = "/console/studies/{uid}" if path.startswith("/console/studies/") else name
        flag = "  SLOW (p95 > 200 ms)" if f95 > 200 else ""
        print(f"{name:32s} {b50:9.1f} {b95:9.1f} {f50:8.1f} {f95:8.1f} {f50 / b50:6.1f} {f95 / b95:6.1f}{flag}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=10_000)
    ap.add_argument("--jobs-per-study", type=int, default=5)
    ap.add_argument("--audit", type=int, default=10_000)
    ap.add_argument("-n", type=int, default=100, help="requests per endpoint (about 1 s per round of all endpoints)")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    ap.add_argument("--pg-url", help="an empty PostgreSQL database to fill (default: a private server, tests/pg.py)")
    args = ap.parse_args()
    full_rows = (args.studies, args.jobs_per_study, args.audit)
    with tempfile.TemporaryDirectory(prefix="aiws-bench-api-") as tmp, ExitStack() as stack:
        targets: dict[str, tuple[str, list[str]]] = {}
        print("baseline: near-empty ledger (1 study, 5 jobs, 1 audit row), same requests, same run")
        targets["empty"] = start(stack, Path(tmp) / "empty", (1, 5, 1))
        print(f"ours: {args.studies} studies, {args.studies * args.jobs_per_study} jobs, {args.audit} audit rows")
        targets["sqlite"] = start(stack, Path(tmp) / "full", full_rows)
        url = None if args.no_postgres else postgres_url(stack, args)
        if url:
            print("PostgreSQL: the same rows in a PostgreSQL ledger ([ledger] url), same requests, same run")
            targets["postgres"] = start(stack, Path(tmp) / "pg", full_rows, url)
        print(f"measuring: {args.n} rounds, the services asked in turn, request by request")
        result = measure(targets, args.n)
    paths = targets["sqlite"][1]
    table(f"{args.n} requests per endpoint, ms (ratio = full / near-empty: how latency grows with the rows)",
          ("base", ""), paths, result["empty"], result["sqlite"])
    print("\nThe near-empty column is the floor of one request here (transport, FastAPI, uvicorn); the rows add the"
          " difference. (Before 39dbdbf that floor was ~44 ms: the API's connections lacked TCP_NODELAY.)")
    if "postgres" in result:
        table("SQLite (baseline) and PostgreSQL, both full, ms (ratio = PostgreSQL / SQLite)", ("SQL", "PG"),
              paths, result["sqlite"], result["postgres"])


if __name__ == "__main__":
    main()
