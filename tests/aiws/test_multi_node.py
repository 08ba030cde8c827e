"""Two ``aiws serve`` nodes on one PostgreSQL ledger and one shared data_dir (docs/deployment.md): studies sent
to either node are each processed exactly once and their results sent once; one node is killed with SIGKILL in
the middle of a job and the other finishes the work; the killed node starts again beside the other.

Real peers: PostgreSQL (tests/pg.py), dcmtk storescu as the modality and storescp as the PACS that receives
the results (unique file names, so a second delivery would show as a second file)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from aiws.ledger import Ledger
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, have_tool, storescu, wait_for
from pg import PgServer

pytestmark = [pytest.mark.network, pytest.mark.slow]

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.destinations]]
name = "sink"
ae_title = "SINK"
host = "127.0.0.1"
port = SINK_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
send_to = ["sink"]
[http]
port = {http_port}
[storage]
data_dir = "SHARED_DATA_DIR"
min_free_mb = 1
[sender]
backoff_seconds = 0.2
backoff_max_seconds = 0.5
[ledger]
sweep_seconds = 0.5
"""
N_STUDIES = 6


@pytest.fixture(scope="module")
def pg_server(pg_server: PgServer) -> PgServer:
    """The session's PostgreSQL cluster (tests/conftest.py), where dcmtk is there too."""
    if not (have_tool("storescu") and have_tool("storescp")):
        pytest.skip("no dcmtk")
    return pg_server


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def _node(tmp_path: Path, name: str, config: str, url: str) -> AiwsProcess:
    workdir = tmp_path / name
    workdir.mkdir()
    return AiwsProcess(workdir, config, env={"AIWS_LEDGER_URL": url, "AIWS_WORKERS": "1"})


def _running_on(url: str, node: AiwsProcess) -> list[int]:
    """Jobs running in a worker of *node* (worker names are ``worker-<service pid>-<n>``)."""
    assert node.proc is not None
    return [r[0] for r in _rows(url, f"SELECT id FROM jobs WHERE state='running' AND worker LIKE "
                                     f"'worker-{node.proc.pid}-%'")]


def test_two_nodes_share_the_work_and_survive_a_kill9(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    shared = tmp_path / "shared-var"
    sink_port = free_port()
    sink_dir = tmp_path / "sink"
    sink_dir.mkdir()
    config = CONFIG.replace("SINK_PORT", str(sink_port)).replace("SHARED_DATA_DIR", str(shared))
    sink = subprocess.Popen(["storescp", "-aet", "SINK", "-uf", "-od", str(sink_dir), str(sink_port)],
                            env=DCMTK_ENV)
    a, b = _node(tmp_path, "a", config, url), _node(tmp_path, "b", config, url)
    try:
        a.start()
        b.start()
        studies = [make_ct_series(tmp_path / f"ct{i}", n_slices=3, rows=32, cols=32, study_uid=generate_uid())
                   for i in range(N_STUDIES)]
        for i, files in enumerate(studies):  # every other study to each node; each store acknowledged
            node = a if i % 2 == 0 else b
            out = storescu("127.0.0.1", node.dicom_port, "AIWS", "STORESCU", files)
            assert out.returncode == 0, out.stdout + out.stderr

        killed = wait_for(lambda: _running_on(url, a), timeout=120, what="a job running on node a")
        a.kill9()  # the service and its worker, in the middle of that job
        assert _rows(url, f"SELECT state FROM jobs WHERE id={killed[0]}") == [("running",)]

        wait_for(lambda: _rows(url, "SELECT COUNT(*) FROM sends WHERE state='done'")[0][0] == N_STUDIES,
                 timeout=180, what="every study's results sent by node b")
        jobs = _rows(url, "SELECT id, state, attempts FROM jobs ORDER BY id")
        assert [state for _, state, _ in jobs] == ["done"] * N_STUDIES
        assert dict((job_id, attempts) for job_id, _, attempts in jobs)[killed[0]] == 2  # taken again once
        done_rows = _rows(url, "SELECT detail FROM audit WHERE action='job done'")
        assert len(done_rows) == N_STUDIES  # each job finished exactly once
        assert _rows(url, "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM sends") == [(N_STUDIES, N_STUDIES)]
        assert _rows(url, "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM results") == [(N_STUDIES, N_STUDIES)]
        # nothing acknowledged is lost: every instance sent is in the ledger and in the shared spool
        instances = {r[0]: r[1] for r in _rows(url, "SELECT sop_instance_uid, path FROM instances")}
        for files in studies:
            for f in files:
                uid = dcmread(f, stop_before_pixels=True).SOPInstanceUID
                assert uid in instances and Path(instances[uid]).is_file()
        # the PACS got one summary per study (a second delivery of the killed job's result would be a new file)
        received = wait_for(lambda: _received(sink_dir) if len(_received(sink_dir)) >= N_STUDIES else None,
                            timeout=30, what="the sink's files")
        assert sorted(received) == sorted(set(received)) and len(received) == N_STUDIES

        a.start()  # the killed node comes back beside the other: nothing is run or sent again
        extra = make_ct_series(tmp_path / "ct-extra", n_slices=2, rows=32, cols=32, study_uid=generate_uid())
        assert storescu("127.0.0.1", a.dicom_port, "AIWS", "STORESCU", extra).returncode == 0
        wait_for(lambda: _rows(url, "SELECT COUNT(*) FROM sends WHERE state='done'")[0][0] == N_STUDIES + 1,
                 timeout=120, what="the study sent after the restart")
        assert _rows(url, "SELECT COUNT(*) FROM audit WHERE action='job done'") == [(N_STUDIES + 1,)]
    finally:
        a.stop()
        b.stop()
        sink.terminate()
        sink.wait(30)
    ledger = Ledger(shared / "aiws.db", url)
    assert ledger.verify_audit().ok
    ledger.close()
    assert not (shared / "aiws.db").exists()  # the ledger was PostgreSQL all along


def _received(sink_dir: Path) -> list[str]:
    return [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sink_dir.iterdir() if p.is_file()]


def test_a_node_killed_while_it_holds_sends_and_jobs_resumes_at_restart(pg_server: PgServer, tmp_path: Path) -> None:
    """One node alone: after kill -9 its own restart sweeps what it held (no other node is needed)."""
    url = pg_server.new_database()
    shared = tmp_path / "var"
    sink_port = free_port()
    config = CONFIG.replace("SINK_PORT", str(sink_port)).replace("SHARED_DATA_DIR", str(shared))
    node = _node(tmp_path, "a", config, url)
    try:
        node.start()
        files = make_ct_series(tmp_path / "ct", n_slices=2, rows=32, cols=32, study_uid=generate_uid())
        assert storescu("127.0.0.1", node.dicom_port, "AIWS", "STORESCU", files).returncode == 0
        wait_for(lambda: _rows(url, "SELECT attempts FROM sends WHERE attempts>=2"), timeout=120,
                 what="the send retrying while the sink is down")
        node.kill9()
        time.sleep(0.5)
        sink_dir = tmp_path / "sink"
        sink_dir.mkdir()
        sink = subprocess.Popen(["storescp", "-aet", "SINK", "-uf", "-od", str(sink_dir), str(sink_port)],
                                env=DCMTK_ENV)
        try:
            node.start()
            wait_for(lambda: _rows(url, "SELECT state FROM sends") == [("done",)], timeout=120,
                     what="the send resumed after the restart")
            assert len(_received(sink_dir)) == 1
        finally:
            sink.terminate()
            sink.wait(30)
    finally:
        node.stop()
