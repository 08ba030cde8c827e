"""The console's dashboard and study page in a real headless Chromium, on a real ``aiws serve``: dcmtk ``storescu``
sends a study, its echo_summary job fails for real (a file where its output folder must go, as on a damaged disk),
the disk is repaired, a radiologist finds the study by its accession on the dashboard, opens it and presses Retry;
the job runs again and its result reaches the destination (a pynetdicom storage SCP). Screenshots are kept under
tests/artifacts/console/.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_helpers import Console, click_to_next_page, start_console
from pydicom import dcmread
from pydicom.uid import generate_uid

from factories import make_ct_series
from peers import AiwsProcess, have_tool, storescu, wait_for

pytestmark = [pytest.mark.network,
              pytest.mark.skipif(not have_tool("storescu"), reason="dcmtk storescu missing")]

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.destinations]]
name = "pacs"
ae_title = "SINK"
host = "127.0.0.1"
port = SINK_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
send_to = ["pacs"]
[http]
host = "127.0.0.1"
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
max_job_tries = 1
retry_seconds = 0
"""
ACCESSION = "ACCSEL7731"


@dataclass
class OpsService:
    """The console's service (``console_helpers.start_console``: an account and a token per role) on this
    test's configuration, with a worker, and the storage SCP its results go to."""

    console: Console
    received: list[str]

    @property
    def proc(self) -> AiwsProcess:
        return self.console.proc

    @property
    def data_dir(self) -> Path:
        return self.console.data_dir


@pytest.fixture
def ops(tmp_path: Path, storage_sink: tuple[int, list[str]]) -> Iterator[OpsService]:
    port, received = storage_sink
    (tmp_path / "svc").mkdir()
    console = start_console(tmp_path / "svc", CONFIG.replace("SINK_PORT", str(port)), env={"AIWS_WORKERS": "1"})
    try:
        yield OpsService(console, received)
    finally:
        console.stop()


def _failed_study(ops: OpsService, tmp_path: Path) -> tuple[str, int, Path]:
    """A study sent by storescu whose job failed for real: a file stands where the job's output folder must go
    (NotADirectoryError, as on a damaged disk) until it is removed. Returns the study UID, the job id and the file."""
    con = sqlite3.connect(ops.data_dir / "aiws.db")
    try:
        seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name='jobs'").fetchone()
    finally:
        con.close()
    job_id = (int(seq[0]) if seq else 0) + 1  # AUTOINCREMENT: the next job's id
    blocker = ops.data_dir / "outbox" / str(job_id)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a folder")
    study = generate_uid()
    files = make_ct_series(tmp_path / "ct", n_slices=2, study_uid=study)
    for path in files:
        ds = dcmread(path)
        ds.AccessionNumber, ds.StudyDescription = ACCESSION, "CT THORAX SELENIUM"
        ds.save_as(path)
    out = storescu("127.0.0.1", ops.proc.dicom_port, "AIWS", "STORESCU", files)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: [j for j in ops.proc.api(f"/api/jobs?study_uid={study}") if j["state"] == "failed"],
             timeout=90, what="the job to fail")
    return study, job_id, blocker


def _text(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_failed_job_retried_from_the_study_page_found_by_accession(
        ops: OpsService, tmp_path: Path, browser: Any, login: Callable[..., None],
        screenshot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By

    study, job_id, blocker = _failed_study(ops, tmp_path)
    # a second study, so that the filter has something to leave out
    other = make_ct_series(tmp_path / "other", n_slices=1)
    assert storescu("127.0.0.1", ops.proc.dicom_port, "AIWS", "STORESCU", other).returncode == 0
    wait_for(lambda: len(ops.proc.api("/api/studies")) == 2 or None, timeout=30, what="the second study")

    login(browser, ops.console, "radiologist")
    browser.get(f"{ops.console.base_url}/console/")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.study-row")) == 2
    browser.find_element(By.ID, "filter-q").send_keys(ACCESSION.lower())
    click_to_next_page(browser, browser.find_element(By.ID, "filter-apply"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.study-row")
    assert [r.find_element(By.CSS_SELECTOR, "td.accession").text for r in rows] == [ACCESSION]
    assert _text(browser, "#study-count") == "1 study; page 1 of 1"
    screenshot(browser, "ops-dashboard-filter-by-accession")

    click_to_next_page(browser, rows[0].find_element(By.CSS_SELECTOR, "a.study-link"))
    assert _text(browser, "#study-uid") == study
    assert _text(browser, f"#job-{job_id}-state") == "failed"
    assert "NotADirectoryError" in _text(browser, f"#job-{job_id}")
    screenshot(browser, "ops-study-failed-job")

    blocker.unlink()  # the disk is repaired; the operator retries
    click_to_next_page(browser, browser.find_element(By.ID, f"retry-{job_id}"))
    assert _text(browser, "#flash") == f"Job {job_id} queued again (pending)."
    assert _text(browser, f"#job-{job_id}-state") in ("pending", "running", "done")
    screenshot(browser, "ops-study-job-retried")

    def done() -> bool | None:
        browser.refresh()
        return _text(browser, f"#job-{job_id}-state") == "done" or None

    wait_for(done, timeout=90, interval=1.0, what="the retried job to finish")
    wait_for(lambda: ops.received or None, timeout=60, what="the result at the destination")

    def sent() -> bool | None:
        browser.refresh()
        return " pacs done " in _text(browser, "#sends") or None

    wait_for(sent, timeout=60, interval=1.0, what="the page to show the send done")
    assert not browser.find_elements(By.ID, f"retry-{job_id}")  # nothing left to retry
    screenshot(browser, "ops-study-job-done")
    retried = [a for a in ops.proc.api("/api/audit?limit=1000") if a["action"] == "job retried"]
    assert [(a["actor"], a["detail"]["job_id"]) for a in retried] == [("user:radiologist", job_id)]
