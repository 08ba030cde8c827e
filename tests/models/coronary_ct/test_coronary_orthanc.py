"""End to end through Orthanc: a phantom calcium-score CT goes to AIWS; SR + SEG + SC come back into the
same study, valid under dciodvfy, with scores matching the phantom truth within the quality bars."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from models.coronary_ct.calcium import CORONARIES
from models.coronary_ct.outputs import SITES
from peers import AiwsProcess, dciodvfy_errors, free_port, have_tool, wait_for
from pipeline_e2e import KINDS, fetch_results, pipeline_config, sr_groups, study_sent
from training.coronary_ct.dicom import write_series
from training.coronary_ct.evaluate import agatston_within_bar
from training.coronary_ct.phantom import make_phantom, truth_score

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not (have_tool("Orthanc") and have_tool("dciodvfy")), reason="Orthanc/dicom3tools")]


def test_calcium_score_round_trip_through_orthanc(tmp_path: Path, orthanc_factory) -> None:
    phantom = make_phantom(10003)  # unseen seed (training uses < 5000)
    _, _, truth = truth_score(phantom)
    assert truth.total.agatston > 100  # a phantom with calcium in several vessels
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    files = write_series(phantom, tmp_path / "ct")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    orthanc.upload(files)
    orthanc_study = orthanc.post("/tools/lookup", study_uid.encode())[0]["ID"]
    config = pipeline_config([("coronary_ct", "CT")], orthanc.dicom_port)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port).start()
    try:
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_study], "Synchronous": True})
        study = wait_for(lambda: study_sent(aiws, study_uid), timeout=240, what="the calcium results to be sent back")
        assert [j["state"] for j in study["jobs"]] == ["done"]
        summary = study["jobs"][0]["summary"]
        assert summary["cac_drs"] == truth.cac_drs
        back = dict(fetch_results(orthanc, study, tmp_path))
        kinds = sorted(KINDS[str(ds.SOPClassUID)] for ds in back.values())
        assert kinds.count("sr") == 1 and kinds.count("seg") == 1 and kinds.count("sc") >= 1
        for path, ds in back.items():
            assert ds.StudyInstanceUID == study_uid
            assert dciodvfy_errors(path) == [], path
        sr = next(ds for ds in back.values() if KINDS[str(ds.SOPClassUID)] == "sr")
        groups = sr_groups(sr)
        total = groups["calcium-total"]["112058"]
        assert agatston_within_bar(total, truth.total.agatston), (total, truth.total.agatston)
        for vessel in CORONARIES:
            got = groups[f"calcium-{vessel.value}"]
            assert got["363698007"] == SITES[vessel].meaning  # finding site
            assert abs(got["112058"] - truth.vessels[vessel].agatston) <= max(3.0, 0.1 * truth.vessels[vessel].agatston)
        assert groups["calcium-total"]["CACDRS"] == f"CAC-DRS {truth.cac_drs}"
        seg = next(ds for ds in back.values() if KINDS[str(ds.SOPClassUID)] == "seg")
        labels = [s.SegmentLabel for s in seg.SegmentSequence]
        calcified = [f"{v.value} calcium" for v in CORONARIES if truth.vessels[v].agatston > 0]
        assert labels == calcified
    finally:
        aiws.stop()
