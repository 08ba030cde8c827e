"""One pass per study: a running ``aiws serve`` reads each spooled instance's header once, at the study's
completion, and hands it on; the worker groups, chooses and stacks the routed series from those headers
(and reads the pixels straight from the files), so no spooled file is parsed by pydicom a second time.

Every pydicom parse in the service's processes (the main process and its workers) is counted by a
``sitecustomize`` module on ``PYTHONPATH`` that wraps ``pydicom.filereader.read_partial`` (what
``dcmread`` calls) and appends the file's name and whether pixel data was skipped to a log.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread

from peers import AiwsProcess, have_tool, storescu, wait_for
from pipeline_e2e import pipeline_config
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import make_phantom

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not have_tool("storescu"), reason="dcmtk storescu")]

_COUNTER = '''
import os
import pydicom.filereader as _fr

_LOG = os.environ["AIWS_TEST_READ_LOG"]
_original = _fr.read_partial


def _counted(fileobj, stop_when=None, *args, **kwargs):
    name = getattr(fileobj, "name", "")
    if isinstance(name, str) and name:
        line = "%d\\t%s\\t%s\\n" % (os.getpid(), "header" if stop_when is not None else "full", os.path.abspath(name))
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    return _original(fileobj, stop_when, *args, **kwargs)


_fr.read_partial = _counted
'''


def _job_done(aiws: AiwsProcess, study_uid: str) -> dict | None:
    study = aiws.api(f"/api/studies/{study_uid}")
    jobs = study["jobs"]
    if jobs and jobs[0]["state"] == "failed":
        raise AssertionError(f"job failed: {jobs[0].get('error')}\n{aiws.log()[-2000:]}")
    return study if jobs and jobs[0]["state"] == "done" else None


def test_each_spooled_header_is_read_once_per_study(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_COUNTER)
    log = tmp_path / "reads.log"
    files = write_series(make_phantom(10011), tmp_path / "ct")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    (tmp_path / "aiws").mkdir()
    # results go to a destination nobody listens on: the sends are retried, the job is what is measured
    config = pipeline_config([("coronary_ct", "^CT$")], pacs_port=9, known_source=False)
    aiws = AiwsProcess(tmp_path / "aiws", config, env={"PYTHONPATH": str(hook), "AIWS_TEST_READ_LOG": str(log)})
    aiws.start()
    try:
        sent = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files)
        assert sent.returncode == 0, sent.stderr[-500:]
        study = wait_for(lambda: _job_done(aiws, study_uid), timeout=300, what="the calcium job")
    finally:
        aiws.stop()
    assert study["jobs"][0]["summary"]["series_uid"]  # the job measured the series it was handed
    spool = (aiws.data_dir / "spool").resolve()
    reads = [line.split("\t") for line in log.read_text().splitlines()]
    spooled = [(kind, path) for _, kind, path in reads if Path(path).resolve().is_relative_to(spool)]
    per_file = Counter(path for _, path in spooled)
    assert len(per_file) == len(files)  # every instance was read back at completion ...
    assert set(per_file.values()) == {1}, per_file.most_common(3)  # ... and never again
    assert {kind for kind, _ in spooled} == {"header"}  # pixels are read from the files, not parsed again
