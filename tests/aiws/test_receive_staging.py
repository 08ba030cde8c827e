"""``aiws serve`` receives each data set into a file under the spool (not /tmp); a kill -9 mid-receive
leaves nothing there after the next start, and the image is not acknowledged."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, wait_for

pytestmark = [pytest.mark.network, pytest.mark.slow]

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
max_pdu_bytes = 16384
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
count = 0
"""


def _large_instance(out: Path, frames: int) -> Path:
    ds = dcmread(make_ct_series(out / "one", n_slices=1, rows=512, cols=512)[0])
    ds.NumberOfFrames = frames
    ds.PixelData = np.ones(frames * 512 * 512, np.uint16).tobytes()
    path = out / "large.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_kill9_while_receiving_leaves_no_staged_file(tmp_path: Path) -> None:
    large = _large_instance(tmp_path, frames=256)  # 128 MiB in 16 KiB PDUs: seconds on the wire
    work = tmp_path / "aiws"
    work.mkdir()
    aiws = AiwsProcess(work, CONFIG).start()
    staging = aiws.data_dir / "spool" / "tmp"
    sender = subprocess.Popen(["storescu", "-aet", "STORESCU", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                               str(large)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=DCMTK_ENV)
    try:
        staged = wait_for(lambda: list(staging.glob("tmp*.dcm")), timeout=60, interval=0.05,
                          what="the data set being received into the spool's staging folder")
        aiws.kill9()
        assert staged[0].exists()  # left behind by the crash
    finally:
        sender.wait(60)
        aiws.stop()
    assert sender.returncode != 0  # never acknowledged
    aiws = AiwsProcess(work, CONFIG, dicom_port=aiws.dicom_port, http_port=aiws.http_port).start()
    try:
        assert list(staging.glob("tmp*.dcm")) == []
        assert aiws.api("/health")["counts"]["instances"]["total"] == 0
    finally:
        aiws.stop()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_memory_does_not_grow_with_the_data_set(tmp_path: Path) -> None:
    """A 128 MiB instance raises the service's peak resident memory by far less than its size (it went
    from the PDUs into a file); receiving it whole in memory cost about 3x its size."""
    large = _large_instance(tmp_path, frames=256)
    work = tmp_path / "aiws"
    work.mkdir()
    aiws = AiwsProcess(work, CONFIG.replace("max_pdu_bytes = 16384", "max_pdu_bytes = 1048576")).start()
    try:
        assert aiws.proc is not None
        before = _peak_rss_mib(aiws.proc.pid)
        out = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                              str(large)], capture_output=True, text=True, env=DCMTK_ENV, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        grown = _peak_rss_mib(aiws.proc.pid) - before
        assert aiws.api("/health")["counts"]["instances"]["total"] == 1
    finally:
        aiws.stop()
    assert grown < 48, f"peak resident memory grew by {grown:.0f} MiB for a 128 MiB data set"
