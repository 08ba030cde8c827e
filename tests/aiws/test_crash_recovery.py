"""kill -9 during a 300-instance transfer loses nothing acknowledged; jobs and sends resume after restart."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, wait_for

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
data_dir = "{data_dir}"
min_free_mb = 1
[sender]
max_tries = 1000
backoff_seconds = 0.2
backoff_max_seconds = 0.5
"""


def _acknowledged(storescu_output: str) -> list[str]:
    """Files storescu saw acknowledged with Success (it logs the file, then the response)."""
    acked, current = [], None
    for line in storescu_output.splitlines():
        m = re.search(r"Sending file: (\S+)", line)
        if m:
            current = m.group(1)
        elif "Received Store Response (Success)" in line and current:
            acked.append(current)
            current = None
    return acked


def _ledger_uids(data_dir: Path) -> set[str]:
    con = sqlite3.connect(data_dir / "aiws.db")
    try:
        return {r[0] for r in con.execute("SELECT sop_instance_uid FROM instances")}
    finally:
        con.close()


def test_kill9_mid_transfer_then_resume(tmp_path: Path) -> None:
    files = make_ct_series(tmp_path / "ct", n_slices=300, rows=128, cols=128, study_uid=generate_uid())
    sink_port = free_port()
    workdir = tmp_path / "aiws"
    workdir.mkdir()
    aiws = AiwsProcess(workdir, CONFIG.replace("SINK_PORT", str(sink_port)), env={"AIWS_WORKERS": "0"}).start()
    storescu = subprocess.Popen(
        ["storescu", "-v", "-aet", "STORESCU", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
         *[str(f) for f in files]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=DCMTK_ENV,
    )
    assert storescu.stdout is not None
    lines: list[str] = []
    for line in storescu.stdout:
        lines.append(line)
        if len(_acknowledged("".join(lines))) >= 120:
            aiws.kill9()
            break
    rest, _ = storescu.communicate(timeout=120)
    acked = _acknowledged("".join(lines) + rest)
    assert 120 <= len(acked) < 300, "the kill must land mid-transfer"

    aiws.start()  # same data dir and ports
    in_ledger = _ledger_uids(aiws.data_dir)
    for f in acked:
        ds = dcmread(f, stop_before_pixels=True)
        assert ds.SOPInstanceUID in in_ledger
        spooled = aiws.data_dir / "spool" / "instances" / ds.StudyInstanceUID / ds.SeriesInstanceUID
        assert (spooled / f"{ds.SOPInstanceUID}.dcm").exists()
    assert list((aiws.data_dir / "spool" / "tmp").iterdir()) == []

    # the rest of the study arrives; with no worker the job waits in the ledger
    out = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                          *[str(f) for f in files]], capture_output=True, text=True, env=DCMTK_ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: aiws.api("/api/jobs?state=pending"), timeout=30, what="a pending job")
    aiws.kill9()

    # restart with a worker: the job runs; the sink is down so the send retries
    aiws.env = {"AIWS_WORKERS": "1"}
    aiws.start()
    sends = wait_for(lambda: [s for s in aiws.api("/api/sends") if s["attempts"] >= 2], timeout=60,
                     what="send retries while the destination is down")
    assert sends[0]["state"] in ("pending", "sending") and sends[0]["last_error"]
    aiws.kill9()

    sink_dir = tmp_path / "sink"
    sink_dir.mkdir()
    sink = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(sink_dir), str(sink_port)], env=DCMTK_ENV)
    try:
        time.sleep(0.3)
        aiws.start()
        done = wait_for(lambda: [s for s in aiws.api("/api/sends") if s["state"] == "done"], timeout=60,
                        what="the resumed send")
        assert len(done) == 1
        assert len(list(sink_dir.iterdir())) == 1
        assert aiws.api("/api/studies")[0]["n_instances"] == 300
    finally:
        sink.terminate()
        sink.wait()
        aiws.stop()
