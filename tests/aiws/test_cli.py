"""The ``aiws`` command line against real peers, and worker replacement."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aiws.cli import main
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for


def _config(tmp_path: Path, sink_port: int) -> Path:
    path = tmp_path / "aiws.toml"
    path.write_text(f"""
[storage]
data_dir = "{tmp_path / 'var'}"
[[dicom.destinations]]
name = "sink"
ae_title = "SINK"
host = "127.0.0.1"
port = {sink_port}
""")
    return path


def test_ae_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path, 104))
    assert main(["ae", "add", "source", "CT01", "--host", "10.0.0.5", "--config", cfg]) == 0
    assert main(["--config", cfg, "ae", "add", "destination", "ARCHIVE", "--name", "archive",
                 "--host", "10.0.0.9", "--port", "104"]) == 0
    assert main(["ae", "add", "source", "CT01", "--host", "10.0.0.5", "--config", cfg]) == 1  # duplicate
    assert main(["ae", "list", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "CT01" in out and "10.0.0.5" in out and "ARCHIVE@10.0.0.9:104" in out and "sink" in out
    assert main(["ae", "remove", "source", "CT01", "--config", cfg]) == 0
    assert main(["ae", "remove", "destination", "nope", "--config", cfg]) == 1
    assert "destination 'nope' is not configured" in capsys.readouterr().err
    assert main(["ae", "set-local", "AIWS_NORTH", "--config", cfg]) == 0
    assert main(["status", "--config", cfg]) == 0
    assert "local AE AIWS_NORTH" in capsys.readouterr().out


@pytest.mark.network
def test_echo_and_send(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    cfg = str(_config(tmp_path, port))
    assert main(["echo", "sink", "--config", cfg]) == 1
    out_dir = tmp_path / "received"
    out_dir.mkdir()
    sink = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(out_dir), str(port)], env=DCMTK_ENV)
    try:
        time.sleep(0.3)
        assert main(["echo", "sink", "--config", cfg]) == 0
        make_ct_series(tmp_path / "ct", 3)
        assert main(["send", "sink", str(tmp_path / "ct"), "--config", cfg]) == 0
        assert "sent 3 instances" in capsys.readouterr().out
        assert len(list(out_dir.iterdir())) == 3
    finally:
        sink.terminate()
        sink.wait()


CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
[study]
quiet_seconds = 0.3
[[routes]]
pipeline = "echo_summary"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.mark.network
def _cmdline(pid: str) -> str:
    """A child's command line, or "" when it exited between pgrep and the read (CI saw that race)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def test_dead_worker_is_replaced(tmp_path: Path) -> None:
    aiws = AiwsProcess(tmp_path, CONFIG).start()
    try:
        def workers() -> list[str]:
            assert aiws.proc is not None
            out = subprocess.run(["pgrep", "-P", str(aiws.proc.pid)], capture_output=True, text=True).stdout
            return [p for p in out.split() if "spawn_main" in _cmdline(p)]

        first = wait_for(workers, timeout=30, what="a worker process")
        os.kill(int(first[0]), signal.SIGKILL)
        wait_for(lambda: [p for p in workers() if p not in first], timeout=30, what="a replacement worker")
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "X", make_ct_series(tmp_path / "ct", 2)).returncode == 0
        done = wait_for(lambda: aiws.api("/api/jobs?state=done"), timeout=60, what="the job on the new worker")
        assert done[0]["pipeline"] == "echo_summary"
        assert "exited with code -9" in aiws.log()
    finally:
        aiws.stop()
