"""Destination down: sends retry with backoff, succeed when it is back, or are dead-lettered."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from aiws.config import SenderConfig
from aiws.sending import backoff_seconds
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for

pytestmark = pytest.mark.network

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
[[dicom.destinations]]
name = "sink"
ae_title = "SINK"
host = "127.0.0.1"
port = SINK_PORT
[study]
quiet_seconds = 0.5
[[routes]]
pipeline = "echo_summary"
send_to = ["sink"]
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[sender]
max_tries = MAX_TRIES
backoff_seconds = 0.2
backoff_max_seconds = 0.4
"""


def test_backoff_is_exponential_and_capped() -> None:
    policy = SenderConfig(max_tries=5, backoff_seconds=2, backoff_max_seconds=10)
    assert [backoff_seconds(n, policy) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def _start(tmp_path: Path, sink_port: int, max_tries: int) -> AiwsProcess:
    cfg = CONFIG.replace("SINK_PORT", str(sink_port)).replace("MAX_TRIES", str(max_tries))
    return AiwsProcess(tmp_path / "aiws", cfg).start()


def _sink(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    out = tmp_path / "sink"
    out.mkdir(exist_ok=True)
    proc = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(out), str(port)], env=DCMTK_ENV)
    time.sleep(0.3)
    return proc


def test_send_retries_until_destination_is_back(tmp_path: Path) -> None:
    (tmp_path / "aiws").mkdir()
    port = free_port()
    aiws = _start(tmp_path, port, max_tries=100)
    sink = None
    try:
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "ANY", make_ct_series(tmp_path / "ct", 3)).returncode == 0
        wait_for(lambda: [s for s in aiws.api("/api/sends") if s["attempts"] >= 3], timeout=60, what="3 tries")
        assert aiws.api("/api/sends")[0]["state"] in ("pending", "sending")
        sink = _sink(tmp_path, port)
        wait_for(lambda: aiws.api("/api/sends?state=done"), timeout=30, what="delivery after recovery")
        assert len(list((tmp_path / "sink").iterdir())) == 1
    finally:
        if sink:
            sink.terminate()
            sink.wait()
        aiws.stop()


def test_dead_letter_then_manual_retry(tmp_path: Path) -> None:
    (tmp_path / "aiws").mkdir()
    port = free_port()
    aiws = _start(tmp_path, port, max_tries=3)
    sink = None
    try:
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "ANY", make_ct_series(tmp_path / "ct", 2)).returncode == 0
        dead = wait_for(lambda: aiws.api("/api/sends?state=dead"), timeout=60, what="dead-letter")
        assert dead[0]["attempts"] == 3
        assert "association" in dead[0]["last_error"]
        assert any(a["action"] == "send dead-lettered" for a in aiws.api("/api/audit"))
        sink = _sink(tmp_path, port)
        assert aiws.api(f"/api/sends/{dead[0]['id']}/retry", method="POST")["state"] == "pending"
        wait_for(lambda: aiws.api("/api/sends?state=done"), timeout=30, what="delivery after manual retry")
    finally:
        if sink:
            sink.terminate()
            sink.wait()
        aiws.stop()
