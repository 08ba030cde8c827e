"""End to end through Orthanc: a phantom calcium-score CT goes to AIWS; SR + SEG + SC come back into the
same study, valid under dciodvfy, with scores matching the phantom truth within the quality bars."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from models.coronary_ct.calcium import CORONARIES
from models.coronary_ct.outputs import SITES
from peers import AiwsProcess, dciodvfy_errors, free_port, have_tool, wait_for
from training.coronary_ct.dicom import write_series
from training.coronary_ct.evaluate import agatston_within_bar
from training.coronary_ct.phantom import make_phantom, truth_score

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not (have_tool("Orthanc") and have_tool("dciodvfy")), reason="Orthanc/dicom3tools")]

KINDS = {"1.2.840.10008.5.1.4.1.1.88.34": "sr", "1.2.840.10008.5.1.4.1.1.66.4": "seg",
         "1.2.840.10008.5.1.4.1.1.7": "sc"}
REPO = Path(__file__).resolve().parents[3] / "triton_repo"
CONFIG = """
[dicom]
ae_title = "AIWS"
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = ORTHANC_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "coronary_ct"
send_to = ["pacs"]
[routes.match]
Modality = "CT"
[runtime]
model_repository = "REPO"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


def sr_groups(ds: Dataset) -> dict[str, dict[str, Any]]:
    """tracking identifier -> {"site": finding site meaning, code value -> number or coded meaning}."""
    groups: dict[str, dict[str, Any]] = {}

    def walk(items: Any, current: dict[str, Any] | None) -> None:
        for item in items:
            code = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "CONTAINER" and code == "125007":  # Measurement Group
                group: dict[str, Any] = {}
                walk(item.get("ContentSequence", []), group)
                groups[group.get("112039", "?")] = group
                continue
            if current is not None:
                if item.ValueType == "TEXT":
                    current[code] = item.TextValue
                elif item.ValueType == "NUM":
                    current[code] = float(item.MeasuredValueSequence[0].NumericValue)
                elif item.ValueType == "CODE":
                    current[code] = item.ConceptCodeSequence[0].CodeMeaning
            walk(item.get("ContentSequence", []), current)

    walk(ds.ContentSequence, None)
    return groups


def sent(aiws: AiwsProcess, study_uid: str) -> dict[str, Any] | None:
    """The study once its job is done and every send is done; fails at once when the job failed."""
    study = aiws.api(f"/api/studies/{study_uid}")
    jobs = study["jobs"]
    if jobs and jobs[0]["state"] == "failed":
        raise AssertionError(f"job failed: {jobs[0].get('error')}\n{aiws.log()[-2000:]}")
    done = jobs and jobs[0]["state"] == "done" and study["sends"] and all(s["state"] == "done" for s in study["sends"])
    return study if done else None


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
    config = CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)).replace("REPO", str(REPO))
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port).start()
    try:
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_study], "Synchronous": True})
        study = wait_for(lambda: sent(aiws, study_uid), timeout=240, what="the calcium results to be sent back")
        assert [j["state"] for j in study["jobs"]] == ["done"]
        summary = study["jobs"][0]["summary"]
        assert summary["cac_drs"] == truth.cac_drs
        wanted = {r["sop_instance_uid"] for r in study["results"]}
        wait_for(lambda: wanted <= {i["MainDicomTags"].get("SOPInstanceUID")
                                    for i in orthanc.instances_of_study(study_uid)}, timeout=60,
                 what="every result in Orthanc")
        back = {}
        for inst in orthanc.instances_of_study(study_uid):
            if inst["MainDicomTags"].get("SOPInstanceUID") in wanted:
                path = tmp_path / f"{inst['ID']}.dcm"
                path.write_bytes(orthanc.file_of(inst["ID"]))
                back[path] = dcmread(path)
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
