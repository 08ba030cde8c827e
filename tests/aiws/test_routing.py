"""Routing rules and the re-opening of a study that receives an instance after completion."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from aiws.config import RouteConfig
from aiws.routing import Route, route_study
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for


def _hdr(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def _routes(*raw: dict) -> list[Route]:
    return [Route.of(RouteConfig.model_validate(r)) for r in raw]


def test_first_match_wins_per_pipeline() -> None:
    routes = _routes(
        {"pipeline": "lung", "send_to": ["a"], "match": {"Modality": "CT", "SliceThickness": [0, 2.5]}},
        {"pipeline": "lung", "send_to": ["b"], "match": {"Modality": "CT"}},
        {"pipeline": "calcium", "send_to": ["a"], "match": {"SeriesDescription": "(?i)cascore"}},
    )
    headers = {
        "1.1": _hdr(Modality="CT", SliceThickness="1.0", SeriesDescription="Lung"),
        "1.2": _hdr(Modality="CT", SliceThickness="3.0", SeriesDescription="CaScore"),
        "1.3": _hdr(Modality="MR", SliceThickness="1.0"),
    }
    jobs = {(j.pipeline, j.send_to): j.series_uids for j in route_study(routes, headers)}
    assert jobs == {("lung", ("a",)): ("1.1",), ("lung", ("b",)): ("1.2",), ("calcium", ("a",)): ("1.2",)}


def test_no_match_no_job_and_absent_attribute_never_matches() -> None:
    routes = _routes({"pipeline": "x", "match": {"BodyPartExamined": "CHEST"}})
    assert route_study(routes, {"1": _hdr(Modality="CT")}) == []


def test_multivalued_attribute_joined_with_backslash() -> None:
    routes = _routes({"pipeline": "x", "match": {"ImageType": r"ORIGINAL\\PRIMARY"}})
    assert route_study(routes, {"1": _hdr(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])})
    assert not route_study(routes, {"1": _hdr(ImageType=["DERIVED", "SECONDARY"])})


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
[routes.match]
Modality = "CT"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.mark.network
def test_late_instance_reopens_study_and_replaces_result(tmp_path: Path) -> None:
    sink_port = free_port()
    (tmp_path / "sink").mkdir()
    sink = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(tmp_path / "sink"), str(sink_port)],
                            env=DCMTK_ENV)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", CONFIG.replace("SINK_PORT", str(sink_port))).start()
    try:
        study = generate_uid()
        first = make_ct_series(tmp_path / "a", 3, study_uid=study)
        late = make_ct_series(tmp_path / "b", 1, study_uid=study, description="late series")
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "X", first).returncode == 0
        wait_for(lambda: aiws.api("/api/sends?state=done"), timeout=30, what="first result")
        time.sleep(0.2)
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "X", late).returncode == 0
        wait_for(lambda: len(aiws.api("/api/sends?state=done")) == 2, timeout=30, what="second result")
        info = aiws.api(f"/api/studies/{study}")
        assert info["generation"] == 2 and info["n_instances"] == 4
        jobs = sorted(info["jobs"], key=lambda j: j["id"])
        assert [j["summary"]["instances"] for j in jobs] == [3, 4]
        uids = {r["sop_instance_uid"] for r in info["results"]}
        assert len(uids) == 1, "the re-run must reuse the deterministic result UID"
        assert len(list((tmp_path / "sink").iterdir())) == 1  # replaced, not duplicated

        other = generate_uid()
        mr = make_ct_series(tmp_path / "mr", 2, study_uid=other)
        for f in mr:  # a modality no route matches
            ds = dcmread(f)
            ds.Modality = "MR"
            ds.save_as(f)
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "X", mr).returncode == 0
        unrouted = wait_for(lambda: aiws.api("/api/studies?unrouted=true"), timeout=30, what="unrouted study")
        assert [s["study_uid"] for s in unrouted] == [other]
        assert unrouted[0]["state"] == "complete" and unrouted[0]["n_instances"] == 2
    finally:
        aiws.stop()
        sink.terminate()
        sink.wait()
