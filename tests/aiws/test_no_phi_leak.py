"""Patient data never leaks through errors: distinctive names, IDs and birth dates in malformed tags go
through every path (receive, a job that fails on them, a send that fails) and are then looked for in the
service log, every API listing, the status page, /metrics and ``aiws status``.

Real peers: dcmtk ``storescu`` sends the studies; the destination is a pynetdicom SCP that refuses every
C-STORE and quotes the patient back in its Error Comment (as a hostile or clumsy PACS would).
"""
from __future__ import annotations

import html
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from factories import make_ct_series
from peers import AiwsProcess, free_port, have_tool, storescu, wait_for

pytestmark = [pytest.mark.network, pytest.mark.skipif(not have_tool("storescu"), reason="dcmtk storescu missing"),
              pytest.mark.filterwarnings("ignore:Invalid value for VR")]  # the test's own malformed values

#: Study A: a malformed birth date, a person name with odd characters, and the patient ID typed into the
#: Series Number (an IS: the job fails on it, and Python's message quotes it).
FAILING = {"PatientName": "Zyxäv^Quørt<&>'\"", "PatientID": "PIDQ77321", "PatientBirthDate": "BIRTH1234X",
           "OtherPatientIDs": "OPIDK40417"}
FAILING_RAW = {"SeriesNumber": ("IS", "PIDQ77321"), "PatientWeight": ("DS", "OPIDK40417")}
#: Study B: well-formed but distinctive (the job succeeds, the send fails).
SENT = {"PatientName": "Wqxjuv^Plomkè", "PatientID": "PIDB55102", "PatientBirthDate": "19230417",
        "AccessionNumber": "ACCZ98123", "StudyDescription": "DESCQ4410 THORAX"}
#: The study labels: shown on the console pages to a signed-in user, and nowhere else.
LABELS = ["ACCZ98123", "DESCQ4410"]
#: What must appear nowhere: every value and every part of a name.
NEEDLES = ["Zyxäv", "Quørt", "PIDQ77321", "BIRTH1234X", "OPIDK40417",
           "Wqxjuv", "Plomkè", "PIDB55102", "19230417", *LABELS]

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.destinations]]
name = "hostile"
ae_title = "HOSTILE"
host = "127.0.0.1"
port = SINK_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
send_to = ["hostile"]
[http]
host = "127.0.0.1"
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
max_job_tries = 1
retry_seconds = 0
[sender]
max_tries = 1
backoff_seconds = 0
"""


def _study(out: Path, values: dict[str, str], raw: dict[str, tuple[str, str]] | None = None
           ) -> tuple[str, list[Path]]:
    """Two CT slices of a new study with *values* set, and *raw* (keyword: (VR, text)) written as they are,
    malformed for their VR (pydicom would refuse to set them)."""
    study_uid = generate_uid()
    files = make_ct_series(out, n_slices=2, study_uid=study_uid)
    for path in files:
        ds = dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 100"
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        for keyword, (vr, text) in (raw or {}).items():
            tag = Tag(keyword)
            data = text.encode("latin-1") + b" " * (len(text) % 2)
            ds[tag] = RawDataElement(tag, vr, len(data), data, 0, False, True)
        ds.save_as(path)
    return study_uid, files


@pytest.fixture
def hostile_pacs() -> Iterator[tuple[int, list[str]]]:
    """A storage SCP that refuses every instance with 0xC000 and the patient's name and ID in Error Comment."""
    refused: list[str] = []

    def handle_store(event: evt.Event) -> Dataset:
        ds = event.dataset
        refused.append(str(ds.SOPInstanceUID))
        rsp = Dataset()
        rsp.Status = 0xC000
        rsp.ErrorComment = f"no {ds.PatientID} {ds.PatientName!s}"[:64]
        return rsp

    ae = AE(ae_title="HOSTILE")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    try:
        yield port, refused
    finally:
        server.shutdown()


@pytest.fixture
def aiws(tmp_path: Path, hostile_pacs: tuple[int, list[str]]) -> Iterator[AiwsProcess]:
    workdir = tmp_path / "aiws"
    workdir.mkdir()
    proc = AiwsProcess(workdir, CONFIG.replace("SINK_PORT", str(hostile_pacs[0])))
    try:
        yield proc.start()
    finally:
        proc.stop()


def _get(aiws: AiwsProcess, path: str) -> str:
    response = httpx.get(f"{aiws.url}{path}", headers={"Authorization": "Bearer test-token"}, timeout=30)
    assert response.status_code == 200, (path, response.status_code)
    return response.text


def _haystacks(text: str) -> list[str]:
    """The text as served and decoded (HTML entities, JSON escapes), so that an escaped value is found too."""
    out = [text, html.unescape(text)]
    try:
        out.append(json.dumps(json.loads(text), ensure_ascii=False))
    except ValueError:
        out.append(text.encode("latin-1", "replace").decode("unicode_escape", "replace"))
    return out


def test_patient_values_in_malformed_tags_leak_nowhere(
        tmp_path: Path, aiws: AiwsProcess, hostile_pacs: tuple[int, list[str]]) -> None:
    failing_uid, failing_files = _study(tmp_path / "a", FAILING, FAILING_RAW)
    sent_uid, sent_files = _study(tmp_path / "b", SENT)
    for files in (failing_files, sent_files):
        result = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files)
        assert result.returncode == 0, result.stdout + result.stderr

    def settled() -> list[dict[str, object]] | None:
        jobs = json.loads(_get(aiws, "/api/jobs"))
        sends = json.loads(_get(aiws, "/api/sends"))
        by_study = {j["study_uid"]: j for j in jobs}
        done = (by_study.get(failing_uid, {}).get("state") == "failed"
                and by_study.get(sent_uid, {}).get("state") == "done"
                and any(s["state"] == "dead" for s in sends))
        return jobs if done else None

    jobs = wait_for(settled, timeout=120, interval=0.5, what="the failed job and the dead-lettered send")
    assert hostile_pacs[1], "the hostile PACS was never sent anything"

    # the errors still say what went wrong: exception types, not nothing
    failed = next(j for j in jobs if j["study_uid"] == failing_uid)
    assert str(failed["error"]).split(":")[0].endswith("Error"), failed["error"]
    dead = json.loads(_get(aiws, "/api/sends?state=dead"))[0]
    assert dead["last_error"].startswith("SendError: destination hostile"), dead["last_error"]

    paths = ["/api/studies", f"/api/studies/{failing_uid}", f"/api/studies/{sent_uid}", "/api/jobs",
             "/api/sends", "/api/associations", "/api/audit", "/api/quarantine", "/api/config/ae",
             "/api/config/sources", "/api/config/destinations", "/health", "/metrics", "/console/status",
             *(f"/api/jobs/{j['id']}" for j in jobs)]
    outputs = {path: _get(aiws, path) for path in paths}
    # the console shows the labels to a signed-in user (its other values are searched like the rest below) ...
    console = {path: _get(aiws, path) for path in ("/console/", "/console/?q=accz98123",
                                                   f"/console/studies/{sent_uid}", f"/console/studies/{failing_uid}")}
    for path in ("/console/?q=accz98123", f"/console/studies/{sent_uid}"):
        assert all(label in html.unescape(console[path]) for label in LABELS), path
    # ... and to no one else: without credentials the page is the sign-in form
    anonymous = httpx.get(f"{aiws.url}/console/?q=accz98123", timeout=30, follow_redirects=True)
    assert anonymous.url.path == "/console/login" and not any(v in anonymous.text for v in LABELS)
    env = {**os.environ, "AIWS_ADMIN_TOKEN": "test-token"}
    cli = Path(os.sys.executable).parent / "aiws"
    for args in (["status"], ["status", "--json"]):
        run = subprocess.run([str(cli), "--config", str(aiws.workdir / "aiws.toml"), *args],
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs["aiws " + " ".join(args)] = run.stdout + run.stderr
    assert "failed job" in outputs["aiws status"] and "dead send" in outputs["aiws status"]
    outputs["service log"] = aiws.log()
    assert "crashed" in outputs["service log"] and "dead-lettered" in outputs["service log"]

    leaks = [(where, needle) for where, text in outputs.items() for hay in _haystacks(text)
             for needle in NEEDLES if needle.lower() in hay.lower()]
    leaks += [(where, needle) for where, text in console.items() for hay in _haystacks(text)
              for needle in NEEDLES if needle not in LABELS and needle.lower() in hay.lower()]
    assert not leaks, sorted(set(leaks))
