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
