"""Operator actions — retry a failed job, reprocess a study, send a job's results again — on a real ledger, through
the JSON API with roles, and (reprocess, retry) on a real service loop: dcmtk ``storescu`` sends, ``aiws serve``
routes and runs echo_summary, a pynetdicom SCP receives the results."""
from __future__ import annotations

import html
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from aiws.api.routes.console_ops import quantile
from aiws.errors import NotFound
from aiws.ledger import InstanceRow, Ledger, NewJob, NewResult, StudyLabels
from aiws.ledger.actions import ActionRefused
from aiws.ledger.stats import DURATION_BUCKETS, Histogram
from factories import make_ct_series
from peers import AiwsProcess, have_tool, storescu, wait_for

T0 = 1_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The ledger on SQLite, and on PostgreSQL (the same SQL, translated by aiws.ledger.pg)."""
    url = request.getfixturevalue("pg_server").new_database() if request.param == "postgres" else None
    opened = Ledger(tmp_path / "aiws.db", url)
    try:
        yield opened
    finally:
        opened.close()


def _received(ledger: Ledger, study: str, n: int = 1, series: str = "1.2.3") -> None:
    for i in range(n):
        ledger.record_instance(InstanceRow(f"{study}.{i}", study, series, "1.2.840.10008.5.1.4.1.1.2", "CT",
                                           "1.2.840.10008.1.2.1", f"/spool/{study}/{i}.dcm", 10, "CT1", "127.0.0.1",
                                           T0 + i))


def _completed(ledger: Ledger, study: str, pipelines: tuple[str, ...] = ("echo_summary",)) -> list[int]:
    _received(ledger, study)
    assert ledger.complete_study(study, T0 + 10, [NewJob(p, ("1.2.3",), ("pacs",)) for p in pipelines], T0 + 20)
    return [j.id for j in ledger.list_jobs(study_uid=study)][::-1]


def _run(ledger: Ledger, ok: bool, results: int = 1) -> int:
    job = ledger.claim_job("w1", T0 + 30)
    assert job is not None
    if ok:
        res = [NewResult("sc", f"9.9.{job.id}.{k}", f"9.8.{job.id}", "1.2.840.10008.5.1.4.1.1.7", f"/out/{k}.dcm")
               for k in range(results)]
        assert ledger.finish_job(job.id, res, {"timings_s": {"total": 0.5}}, [("pacs", results)], T0 + 31)
    else:
        ledger.fail_job(job.id, "ValueError: refused", None, T0 + 31)
    return job.id


def _actions(ledger: Ledger, name: str) -> list[dict[str, object]]:
    return [a for a in ledger.list_audit(1000) if a["action"] == name]


# -- retry ----------------------------------------------------------------------------------------------------
def test_retry_puts_a_failed_job_back_and_audits_it(ledger: Ledger) -> None:
    _completed(ledger, "1.1")
    job_id = _run(ledger, ok=False)
    ledger.retry_job(job_id, "user:rad", T0 + 40)
    job = ledger.get_job(job_id)
    assert job is not None and (job.state, job.attempts, job.error, job.not_before) == ("pending", 0, "", T0 + 40)
    (audit,) = _actions(ledger, "job retried")
    assert audit["actor"] == "user:rad" and audit["detail"] == {
        "job_id": job_id, "study_uid": "1.1", "pipeline": "echo_summary", "attempts_before": 1}
    again = ledger.claim_job("w1", T0 + 41)
    assert again is not None and again.id == job_id and again.attempts == 1


@pytest.mark.parametrize("state", ["pending", "running", "done"])
def test_retry_refuses_a_job_that_is_not_failed(ledger: Ledger, state: str) -> None:
    (job_id,) = _completed(ledger, "1.1")
    if state != "pending":
        ledger.claim_job("w1", T0 + 30)
    if state == "done":
        ledger.finish_job(job_id, [], {}, [], T0 + 31)
    with pytest.raises(ActionRefused, match=f"job {job_id} is {state}; only a failed job can be retried"):
        ledger.retry_job(job_id, "user:rad", T0 + 40)
    assert ledger.get_job(job_id).state == state  # type: ignore[union-attr]
    assert _actions(ledger, "job retried") == []


def test_retry_refuses_a_job_its_study_moved_past(ledger: Ledger) -> None:
    _completed(ledger, "1.1")
    job_id = _run(ledger, ok=False)
    _received(ledger, "1.1", n=2)  # a new instance re-opens the study (generation 2)
    with pytest.raises(ActionRefused, match="re-opened since"):
        ledger.retry_job(job_id, "user:rad", T0 + 40)
    assert ledger.complete_study("1.1", T0 + 50, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], T0 + 60)
    with pytest.raises(ActionRefused, match="is a newer run of echo_summary"):
        ledger.retry_job(job_id, "user:rad", T0 + 70)
    with pytest.raises(NotFound, match="job 999 not found"):
        ledger.retry_job(999, "user:rad", T0)


# -- reprocess ------------------------------------------------------------------------------------------------
def test_reprocess_supersedes_the_jobs_and_reopens_the_study(ledger: Ledger) -> None:
    done_id, failed_id, pending_id = _completed(ledger, "1.1", ("echo_summary", "lung", "cardiac"))
    _run(ledger, ok=True)
    _run(ledger, ok=False)
    out = ledger.reprocess_study("1.1", "user:rad", T0 + 100)
    assert (out.generation, out.superseded_jobs) == (2, (done_id, failed_id, pending_id))
    assert {j.state for j in ledger.list_jobs(study_uid="1.1")} == {"superseded"}
    assert [s.state for s in ledger.list_sends()] == ["superseded"]  # the done job's queued send
    study = ledger.get_study("1.1")
    assert study is not None and (study.state, study.generation, study.completed_at) == ("receiving", 2, None)
    # the scheduler finds it quiet at once and routes it again as generation 2, as a re-opened study
    assert ledger.studies_quiet_since(T0 + 100) == [("1.1", T0)]
    assert ledger.complete_study("1.1", T0, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], T0 + 101)
    new = ledger.list_jobs(study_uid="1.1", state="pending")
    assert [(j.generation, j.pipeline) for j in new] == [(2, "echo_summary")]
    (audit,) = _actions(ledger, "study reprocess")
    assert audit["detail"] == {"study_uid": "1.1", "generation": 2,
                               "superseded_jobs": [done_id, failed_id, pending_id]}


def test_reprocess_refusals(ledger: Ledger) -> None:
    _received(ledger, "1.1")
    with pytest.raises(ActionRefused, match="study 1.1 is receiving"):
        ledger.reprocess_study("1.1", "user:rad", T0)
    assert ledger.complete_study("1.1", T0 + 10, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], T0 + 20)
    running = ledger.claim_job("w1", T0 + 30)
    assert running is not None
    with pytest.raises(ActionRefused, match=f"job {running.id} is running"):
        ledger.reprocess_study("1.1", "user:rad", T0 + 40)
    ledger.finish_job(running.id, [], {}, [], T0 + 41)
    with ledger.transaction() as con:  # as a retention purge leaves it
        con.execute("UPDATE studies SET state='purged' WHERE study_uid='1.1'")
    with pytest.raises(ActionRefused, match="was purged"):
        ledger.reprocess_study("1.1", "user:rad", T0 + 50)
    with pytest.raises(NotFound, match="study 2.2 not found"):
        ledger.reprocess_study("2.2", "user:rad", T0)
    assert _actions(ledger, "study reprocess") == []
    assert ledger.get_job(running.id).state == "done"  # type: ignore[union-attr]


# -- resend ---------------------------------------------------------------------------------------------------
DESTINATIONS = {"pacs": False, "archive": True}


def test_resend_queues_new_sends_to_the_jobs_destinations_or_one(ledger: Ledger) -> None:
    _completed(ledger, "1.1")
    job_id = _run(ledger, ok=True, results=2)
    first = ledger.claim_send(T0 + 40)
    assert first is not None
    ledger.send_done(first.id, T0 + 41)
    ids = ledger.resend_job(job_id, "user:rad", T0 + 50, DESTINATIONS)
    assert [(s.destination, s.state, s.n_files) for s in ledger.list_sends(job_id=job_id)] == [
        ("pacs", "pending", 2), ("pacs", "done", 2)]
    with pytest.raises(ActionRefused, match=f"send {ids[0]} to pacs is already queued"):
        ledger.resend_job(job_id, "user:rad", T0 + 51, DESTINATIONS)
    (other,) = ledger.resend_job(job_id, "user:rad", T0 + 52, DESTINATIONS, only="archive")
    assert ledger.get_send(other).destination == "archive"  # type: ignore[union-attr]
    audits = _actions(ledger, "results resent")
    assert [a["detail"]["destinations"] for a in audits] == [["archive"], ["pacs"]]
    assert audits[1]["detail"]["send_ids"] == ids


def test_resend_refusals(ledger: Ledger) -> None:
    _completed(ledger, "1.1", ("echo_summary", "lung"))
    done_id = _run(ledger, ok=True)
    failed_id = _run(ledger, ok=False)
    with pytest.raises(ActionRefused, match=f"job {failed_id} is failed; only a done job"):
        ledger.resend_job(failed_id, "user:rad", T0, DESTINATIONS)
    with pytest.raises(NotFound, match="destination 'nowhere' is not configured"):
        ledger.resend_job(done_id, "user:rad", T0, DESTINATIONS, only="nowhere")
    with pytest.raises(ActionRefused, match="'pacs' is no longer configured"):
        ledger.resend_job(done_id, "user:rad", T0, {"archive": False})
    with ledger.transaction() as con:  # as a retention purge leaves the results
        con.execute("UPDATE results SET path='' WHERE job_id=?", (done_id,))
    with pytest.raises(ActionRefused, match="no result files to send \\(purged by retention\\)"):
        ledger.resend_job(done_id, "user:rad", T0, DESTINATIONS)
    assert _actions(ledger, "results resent") == []


# -- JSON API -------------------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path: Path, ledger: Ledger) -> Iterator[tuple[TestClient, Ledger, dict[str, str]]]:
    """The application on a real ledger (SQLite, PostgreSQL), with an API token per role (aiws.api.accounts)."""
    from aiws.api.accounts import create_account, issue_token
    from aiws.api.app import create_app
    from aiws.api.deps import ApiContext
    from aiws.config import Config
    from aiws.netconfig import NetworkStore
    from pacs_bridge.settings import SenderSettings

    config = Config.model_validate({
        "storage": {"data_dir": str(tmp_path / "var")},
        "dicom": {"destinations": [{"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 11113}]}})
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="admin-secret",
                     sender_settings=SenderSettings(ae_title="AIWS"))
    tokens = {}
    for role in ("radiologist", "ml-engineer", "clinician"):
        create_account(ledger, role, role, "console-pass-1234")
        tokens[role] = issue_token(ledger, role)
    with TestClient(create_app(ctx)) as client:
        yield client, ledger, tokens


def _post(client: TestClient, token: str, path: str, **kw: object) -> tuple[int, dict[str, object]]:
    r = client.post(path, headers={"Authorization": f"Bearer {token}"}, **kw)  # type: ignore[arg-type]
    return r.status_code, r.json()


def test_api_actions_with_roles_and_refusals(api: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, tokens = api
    _completed(ledger, "1.1", ("echo_summary", "lung"))
    done_id = _run(ledger, ok=True)
    failed_id = _run(ledger, ok=False)
    rad = tokens["radiologist"]
    for role in ("ml-engineer", "clinician"):
        assert _post(client, tokens[role], f"/api/jobs/{failed_id}/retry")[0] == 403
        assert _post(client, tokens[role], "/api/studies/1.1/reprocess")[0] == 403
        assert _post(client, tokens[role], f"/api/jobs/{done_id}/resend")[0] == 403
    assert client.post(f"/api/jobs/{failed_id}/retry").status_code == 401

    assert _post(client, rad, f"/api/jobs/{done_id}/retry") == (
        409, {"detail": f"job {done_id} is done; only a failed job can be retried"})
    assert _post(client, rad, f"/api/jobs/{failed_id}/retry") == (200, {"id": failed_id, "state": "pending"})
    assert _post(client, rad, "/api/jobs/4242/retry")[0] == 404

    assert _post(client, rad, f"/api/jobs/{done_id}/resend") == (
        409, {"detail": f"job {done_id}: send 1 to pacs is already queued"})
    sent = ledger.claim_send(T0 + 40)
    assert sent is not None
    ledger.send_done(sent.id, T0 + 41)
    code, body = _post(client, rad, f"/api/jobs/{done_id}/resend", json={"destination": "pacs"})
    assert code == 200 and body["job_id"] == done_id and len(body["send_ids"]) == 1  # type: ignore[arg-type]
    assert _post(client, rad, f"/api/jobs/{done_id}/resend")[0] == 409  # already queued
    assert _post(client, rad, f"/api/jobs/{done_id}/resend", json={"destination": "nope"})[0] == 404

    assert ledger.claim_job("w1", time.time() + 1) is not None  # the retried job runs: reprocess waits for it
    code, body = _post(client, rad, "/api/studies/1.1/reprocess")
    assert code == 409 and f"job {failed_id} is running" in str(body["detail"])
    ledger.fail_job(failed_id, "ValueError: again", None, T0 + 61)
    assert _post(client, "admin-secret", "/api/studies/1.1/reprocess") == (
        200, {"study_uid": "1.1", "generation": 2, "superseded_jobs": [done_id, failed_id]})
    actors = {a["action"]: a["actor"] for a in ledger.list_audit(1000)}
    assert actors["job retried"] == "user:radiologist" and actors["results resent"] == "user:radiologist"
    assert actors["study reprocess"] == "api:admin-token"


# -- console pages and buttons ----------------------------------------------------------------------------------
def _login(client: TestClient, role: str) -> None:
    r = client.post("/console/login", data={"username": role, "password": "console-pass-1234"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def _labelled(ledger: Ledger, study: str, accession: str, description: str, modality: str = "CT") -> None:
    ledger.record_instance(InstanceRow(f"{study}.1", study, "1.2.3", "1.2.840.10008.5.1.4.1.1.2", modality,
                                       "1.2.840.10008.1.2.1", f"/spool/{study}/1.dcm", 10, "CT1", "127.0.0.1", T0),
                           labels=StudyLabels(accession, description))


def test_console_buttons_call_the_actions_with_csrf(api: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = api
    _labelled(ledger, "1.1", "ACC1001", "CT CHEST")
    assert ledger.complete_study("1.1", T0 + 10, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], T0 + 20)
    failed_id = _run(ledger, ok=False)
    _login(client, "radiologist")
    page = client.get("/console/studies/1.1")
    assert page.status_code == 200 and "ACC1001" in page.text and f'id="retry-{failed_id}"' in page.text
    assert client.post(f"/console/jobs/{failed_id}/retry").status_code == 403  # no CSRF token
    assert ledger.get_job(failed_id).state == "failed"  # type: ignore[union-attr]
    r = client.post(f"/console/jobs/{failed_id}/retry", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 200 and r.url.path == "/console/studies/1.1"
    assert f"Job {failed_id} queued again (pending)." in r.text
    assert re.search(rf'id="job-{failed_id}-state">pending<', r.text)
    # a refusal comes back as the message, nothing changes
    r = client.post(f"/console/jobs/{failed_id}/retry", data={"csrf_token": _csrf(r.text)})
    assert f"Not retried: job {failed_id} is pending; only a failed job can be retried" in html.unescape(r.text)
    r = client.post("/console/studies/1.1/reprocess", data={"csrf_token": _csrf(r.text)})
    assert "Study sent back to routing as generation 2; 1 job(s) superseded." in r.text
    assert 'id="study-state">receiving<' in r.text
    actions = [(a["actor"], a["action"]) for a in ledger.list_audit(100) if a["action"] in ("job retried",
                                                                                          "study reprocess")]
    assert actions == [("user:radiologist", "study reprocess"), ("user:radiologist", "job retried")]


def test_console_resend_form(api: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = api
    _completed(ledger, "1.1")
    job_id = _run(ledger, ok=True)
    _login(client, "radiologist")
    page = client.get("/console/studies/1.1")
    r = client.post(f"/console/jobs/{job_id}/resend", data={"csrf_token": _csrf(page.text), "destination": ""})
    assert f"Not sent: job {job_id}: send 1 to pacs is already queued" in html.unescape(r.text)
    sent = ledger.claim_send(T0 + 40)
    assert sent is not None
    ledger.send_done(sent.id, T0 + 41)
    r = client.post(f"/console/jobs/{job_id}/resend", data={"csrf_token": _csrf(r.text), "destination": "pacs"})
    assert f"Job {job_id}: 1 send(s) queued." in r.text
    assert [s.state for s in ledger.list_sends(job_id=job_id)] == ["pending", "done"]


def test_console_reader_without_buttons(api: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = api
    _labelled(ledger, "1.1", "ACC1001", "CT CHEST")
    assert ledger.complete_study("1.1", T0 + 10, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], T0 + 20)
    failed_id = _run(ledger, ok=False)
    _login(client, "ml-engineer")
    page = client.get("/console/studies/1.1")
    assert page.status_code == 200 and "ACC1001" in page.text
    assert "retry-" not in page.text and 'id="reprocess"' not in page.text
    r = client.post(f"/console/jobs/{failed_id}/retry", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 403
    missing = client.get("/console/studies/9.9")
    assert missing.status_code == 404 and 'id="not-found"' in missing.text
    _login(client, "clinician")
    assert client.get("/console/studies/1.1").status_code == 403
    client.cookies.clear()
    r = client.get("/console/?q=acc1001", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_dashboard_search_filters_and_pages(api: tuple[TestClient, Ledger, dict[str, str]]) -> None:
    client, ledger, _ = api
    for n in range(60):
        _labelled(ledger, f"1.{n}", f"ACC{n:04d}", "MR KNEE" if n % 2 else "CT CHEST_100%", "MR" if n % 2 else "CT")
    _login(client, "radiologist")
    page = client.get("/console/")
    assert page.status_code == 200 and "60 studies; page 1 of 2" in page.text
    assert page.text.count('class="study-row"') == 50 and 'id="page-next"' in page.text
    assert client.get("/console/?page=2").text.count('class="study-row"') == 10

    def found(query: str) -> list[str]:
        text = client.get(f"/console/?{query}").text
        return re.findall(r'<td class="accession">([^<]*)</td>', text)

    assert found("q=acc0007") == ["ACC0007"]
    assert set(found("q=knee")) == {f"ACC{n:04d}" for n in range(1, 60, 2)}
    assert len(found("q=100%25")) == 30 and found("q=1_0") == []  # LIKE wildcards taken literally
    assert len(found("modality=CT")) == 30 and found("modality=C") == []
    assert found("source=OTHER") == [] and len(found("source=CT1&state=receiving&q=ACC000")) == 10
    day = time.strftime("%Y-%m-%d", time.localtime(T0))
    assert len(found(f"from={day}&to={day}&q=ACC001")) == 10 and found("from=2999-01-01") == []
    assert client.get("/console/?state=bogus").status_code == 422
    # the API answers carry no label
    studies = client.get("/api/studies").json()
    assert len(studies) == 60 and not {"accession", "modality", "description"} & set(studies[0])


def test_duration_quantiles_from_the_buckets() -> None:
    counts = [0] * len(DURATION_BUCKETS)
    counts[DURATION_BUCKETS.index(1.0)] = 10  # ten jobs between 0.5 and 1 s
    counts[DURATION_BUCKETS.index(10.0)] = 10  # ten between 5 and 10 s
    cumulative = tuple(sum(counts[: i + 1]) for i in range(len(counts)))
    hist = Histogram(("p", "job"), cumulative, 20, 0.0)
    assert quantile(hist, 0.5) == pytest.approx(1.0)
    assert quantile(hist, 0.95) == pytest.approx(9.5)
    assert quantile(Histogram(("p", "job"), (0,) * len(DURATION_BUCKETS), 0, 0.0), 0.5) is None


# -- real service loop ----------------------------------------------------------------------------------------
LOOP_CONFIG = """
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


@pytest.fixture
def sink(storage_sink: tuple[int, list[str]]) -> tuple[int, list[str]]:
    """The destination "pacs": tests/conftest.py's storage SCP, keeping the SOP Instance UIDs it received."""
    return storage_sink


@pytest.fixture
def service(tmp_path: Path, sink: tuple[int, list[str]]) -> Iterator[AiwsProcess]:
    work = tmp_path / "aiws"
    work.mkdir()
    proc = AiwsProcess(work, LOOP_CONFIG.replace("SINK_PORT", str(sink[0])))
    try:
        yield proc.start()
    finally:
        proc.stop()


def obstruct_next_job(data_dir: Path) -> Path:
    """A file where the next job's output folder must go (its id: one above the highest AUTOINCREMENT gave): the
    job fails for real (NotADirectoryError), as on a damaged disk, until the file is removed."""
    with closing(sqlite3.connect(data_dir / "aiws.db")) as con:
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name='jobs'").fetchone()
    blocker = data_dir / "outbox" / str((int(row[0]) if row else 0) + 1)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a folder")
    return blocker


def _jobs(aiws: AiwsProcess, study: str) -> list[dict[str, Any]]:
    return aiws.api(f"/api/jobs?study_uid={study}")  # type: ignore[no-any-return]


@pytest.mark.network
@pytest.mark.skipif(not have_tool("storescu"), reason="dcmtk storescu missing")
def test_retry_then_reprocess_on_the_service_loop(tmp_path: Path, service: AiwsProcess,
                                                  sink: tuple[int, list[str]]) -> None:
    study = generate_uid()
    blocker = obstruct_next_job(service.data_dir)
    out = storescu("127.0.0.1", service.dicom_port, "AIWS", "STORESCU", make_ct_series(tmp_path / "s", 2,
                                                                                         study_uid=study))
    assert out.returncode == 0, out.stdout + out.stderr
    failed = wait_for(lambda: [j for j in _jobs(service, study) if j["state"] == "failed"], timeout=90,
                      what="the job to fail")[0]
    assert str(failed["error"]).startswith("NotADirectoryError"), failed["error"]
    blocker.unlink()  # the disk is repaired
    assert service.api(f"/api/jobs/{failed['id']}/retry", method="POST") == {
        "id": failed["id"], "state": "pending"}
    wait_for(lambda: sink[1], timeout=90, what="the retried job's result at the destination")
    first = list(sink[1])
    job = _jobs(service, study)[0]
    assert (job["id"], job["state"], job["attempts"]) == (failed["id"], "done", 1)

    answer = service.api(f"/api/studies/{study}/reprocess", method="POST")
    assert answer["generation"] == 2 and answer["superseded_jobs"] == [failed["id"]]

    def second_run() -> list[dict[str, object]]:
        jobs = _jobs(service, study)
        return [j for j in jobs if j["generation"] == 2 and j["state"] == "done"] if len(sink[1]) > 1 else []

    (rerun,) = wait_for(second_run, timeout=90, what="the reprocessed study's new job and its send")
    assert rerun["id"] != failed["id"] and sink[1][1] == first[0]  # same output UID: deterministic
    states = {j["id"]: j["state"] for j in _jobs(service, study)}
    assert states == {failed["id"]: "superseded", rerun["id"]: "done"}
    audit = [a["action"] for a in service.api("/api/audit?limit=1000")]
    assert "job retried" in audit and "study reprocess" in audit
