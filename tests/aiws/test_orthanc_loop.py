"""End to end with a real PACS: Orthanc sends a multi-series study, the echo_summary result comes back."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from factories import make_ct_series
from peers import AiwsProcess, dciodvfy_errors, free_port, wait_for

pytestmark = pytest.mark.network

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
pipeline = "echo_summary"
send_to = ["pacs"]
[routes.match]
Modality = "CT|MR"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


def test_orthanc_study_round_trip(tmp_path: Path, orthanc_factory) -> None:
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    study_uid = generate_uid()
    files = make_ct_series(tmp_path / "s1", n_slices=6, study_uid=study_uid, description="CHEST 1mm")
    files += make_ct_series(tmp_path / "s2", n_slices=4, study_uid=study_uid, description="CHEST 5mm")
    orthanc.upload(files)
    orthanc_study = orthanc.post("/tools/lookup", study_uid.encode())[0]["ID"]

    aiws = AiwsProcess(tmp_path / "aiws", CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)),
                       dicom_port=aiws_port)
    (tmp_path / "aiws").mkdir()
    aiws.start()
    try:
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_study], "Synchronous": True})
        sends = wait_for(lambda: [s for s in aiws.api("/api/sends") if s["state"] == "done"],
                         timeout=90, what="the result to be sent back")
        assert len(sends) == 1
        study = aiws.api(f"/api/studies/{study_uid}")
        assert study["n_instances"] == 10
        assert sorted(s["instances"] for s in study["series"]) == [4, 6]
        assert [j["state"] for j in study["jobs"]] == ["done"]
        assert study["jobs"][0]["summary"]["series"] == 2

        back = [i for i in orthanc.instances_of_study(study_uid) if i["MainDicomTags"].get("SOPInstanceUID")
                == study["results"][0]["sop_instance_uid"]]
        assert len(back) == 1, "the summary must land in the same study in Orthanc"
        sc_path = tmp_path / "sc.dcm"
        sc_path.write_bytes(orthanc.file_of(back[0]["ID"]))
        sc = dcmread(sc_path)
        assert sc.StudyInstanceUID == study_uid
        assert sc.SeriesDescription.startswith("AIWS echo_summary")
        assert dciodvfy_errors(sc_path) == []
        associations = aiws.api("/api/associations")
        assert any(a["calling_ae"] == "ORTHANC" and a["received"] == 10 for a in associations)
        log = aiws.log()
        assert study_uid in log  # UIDs are logged …
        for identifier in ("PHANTOM^TEST", "PHANTOM001", "19600101", "ACC0001"):
            assert identifier not in log  # … patient data never
    finally:
        aiws.stop()
