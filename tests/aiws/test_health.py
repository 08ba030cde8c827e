"""Degraded health: ``/health`` says why, ``/metrics`` has the matching series. Against ``aiws serve``
with dcmtk storescu/storescp peers; each degradation is provoked for real and, where it can be, cleared."""
from __future__ import annotations

import logging
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from aiws.config import Config
from aiws.health import check
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.netsettings import sender_settings
from aiws.scheduler import PURGING_DIR, Scheduler
from aiws.sending import SendDispatcher
from factories import make_ct_series
from pacs_bridge.spool import Spool
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for

pytestmark = [pytest.mark.network]

BASE = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
"""


def _metric(aiws: AiwsProcess, series: str) -> float:
    text = httpx.get(f"{aiws.url}/metrics", timeout=30).text
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert m, f"{series} not in /metrics:\n{text}"
    return float(m.group(1))


def _service(tmp_path: Path, config: str, **env: str) -> AiwsProcess:
    work = tmp_path / "aiws"
    work.mkdir()
    return AiwsProcess(work, config, env={"AIWS_WORKERS": "0", "AIWS_QUIET_SECONDS": "1", **env})


def test_dead_lettering_destination_degrades_until_a_send_succeeds(tmp_path: Path) -> None:
    sink_port = free_port()
    config = BASE + f"""min_free_mb = 1
[[dicom.destinations]]
name = "sink"
ae_title = "SINK"
host = "127.0.0.1"
port = {sink_port}
[[routes]]
pipeline = "echo_summary"
send_to = ["sink"]
[sender]
max_tries = 1
"""
    aiws = _service(tmp_path, config, AIWS_WORKERS="1").start()
    sink = None
    try:
        health = aiws.api("/health")
        assert (health["status"], health["reasons"]) == ("ok", [])
        assert _metric(aiws, "aiws_health_degraded") == 0
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", make_ct_series(tmp_path / "ct", 2))
        assert out.returncode == 0, out.stdout + out.stderr
        (dead,) = wait_for(lambda: aiws.api("/api/sends?state=dead"), timeout=120, what="a dead-lettered send")
        health = aiws.api("/health")
        assert health["status"] == "degraded"
        assert "destinations dead-lettering: sink" in health["reasons"]
        assert _metric(aiws, 'aiws_destination_dead_lettering{destination="sink"}') == 1

        sink_dir = tmp_path / "sink"
        sink_dir.mkdir()
        sink = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(sink_dir), str(sink_port)], env=DCMTK_ENV)
        time.sleep(0.3)
        aiws.api(f"/api/sends/{dead['id']}/retry", method="POST")
        wait_for(lambda: aiws.api(f"/api/jobs/{dead['job_id']}")["sends"][0]["state"] == "done", timeout=60,
                 what="the retried send")
        health = aiws.api("/health")
        assert (health["status"], health["reasons"]) == ("ok", [])
        assert "aiws_destination_dead_lettering{" not in httpx.get(f"{aiws.url}/metrics").text
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
        aiws.stop()


def test_disk_under_the_watermark_and_triton_unreachable(tmp_path: Path) -> None:
    config = BASE + "min_free_mb = 1000000000\n"  # a petabyte: this disk is under it
    aiws = _service(tmp_path, config, AIWS_RUNTIME_BACKEND="triton",
                    AIWS_TRITON_URL=f"127.0.0.1:{free_port()}").start()
    try:
        health = aiws.api("/health")
        assert health["status"] == "degraded"
        assert any(r.startswith("disk: ") and "watermark" in r for r in health["reasons"]), health
        assert any(r.startswith("triton: ") and "unreachable" in r for r in health["reasons"]), health
        assert health["checks"]["triton_up"] is False
        assert _metric(aiws, "aiws_disk_free_bytes") < _metric(aiws, "aiws_disk_watermark_bytes")
        assert _metric(aiws, "aiws_triton_up") == 0
        assert _metric(aiws, "aiws_health_degraded") == 1
    finally:
        aiws.stop()


def test_scheduler_errors_degrade_and_are_counted(tmp_path: Path) -> None:
    config = BASE + "min_free_mb = 1\nretention_days = 0.00001\n"  # ~0.9 s: purged at the next retention run
    aiws = _service(tmp_path, config).start()
    try:
        study = generate_uid()
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU",
                       make_ct_series(tmp_path / "ct", 2, study_uid=study))
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: aiws.api(f"/api/studies/{study}")["state"] == "complete", timeout=60, what="completion")
        aiws.stop()
        (aiws.data_dir / "spool" / PURGING_DIR).write_bytes(b"")  # a file where retention needs a folder
        aiws.start()  # retention runs at the first tick
        health = wait_for(lambda: (h := aiws.api("/health"))["status"] == "degraded" and h, timeout=60,
                          what="degraded health")
        assert any(r.startswith("scheduler: ") and "retention: FileExistsError" in r for r in health["reasons"])
        assert _metric(aiws, "aiws_scheduler_errors_total") == 1
        assert aiws.api(f"/api/studies/{study}")["state"] == "complete"  # rolled back: nothing half-purged
        assert aiws.log().count("scheduler step retention failed") == 1
    finally:
        aiws.stop()


def test_a_step_failing_on_every_tick_logs_its_traceback_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = Config.model_validate({"storage": {"data_dir": str(tmp_path)}})
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    dispatcher = SendDispatcher(ledger, network, config.sender, sender_settings(config, "AIWS"))
    scheduler = Scheduler(config, ledger, Spool(tmp_path / "spool", 0), dispatcher, [])
    ledger.query("DROP TABLE sends")  # a damaged ledger: sending and retention fail on each run
    try:
        with caplog.at_level(logging.INFO, logger="aiws.scheduler"):
            for _ in range(10):
                scheduler.tick(time.time())
    finally:
        dispatcher.stop()
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert sorted(r.getMessage() for r in tracebacks) == ["scheduler step retention failed (OperationalError)",
                                                          "scheduler step sending failed (OperationalError)"]
    assert ledger.scheduler_errors()[0] == 11  # ten sending runs, one retention run (hourly)
    assert [r.split(" (")[0] for r in check(config, ledger).reasons] == ["ledger: cannot be read"]
