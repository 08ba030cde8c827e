"""End to end through Orthanc: a phantom short-axis cine goes to AIWS; SR + SEG (ED, ES) + SC come back into
the same study, valid under dciodvfy, with volumes, EF and mass matching the phantom truth within the bars."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from peers import AiwsProcess, dciodvfy_errors, free_port, have_tool, wait_for
from training.cardiac_mri.dicom import write_series
from training.cardiac_mri.phantom import make_params, render_all, truth_function

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
pipeline = "cardiac_mri"
send_to = ["pacs"]
[routes.match]
Modality = "MR"
[runtime]
model_repository = "REPO"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


def sr_values(ds: Dataset) -> dict[str, dict[str, Any]]:
    """tracking identifier -> {concept code value: number or coded meaning} of each measurement group."""
    groups: dict[str, dict[str, Any]] = {}

    def walk(items: Any, current: dict[str, Any] | None) -> None:
        for item in items:
            code = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "CONTAINER" and code == "125007":
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


def test_cardiac_function_round_trip_through_orthanc(tmp_path: Path, orthanc_factory) -> None:
    params = make_params(10002)  # unseen seed (training uses < 5000)
    truth = truth_function(params)
    images, _ = render_all(params)
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    files = write_series(params, images, tmp_path / "mr")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    orthanc.upload(files)
    orthanc_study = orthanc.post("/tools/lookup", study_uid.encode())[0]["ID"]
    config = CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)).replace("REPO", str(REPO))
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port).start()
    try:
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_study], "Synchronous": True})
        study = wait_for(lambda: sent(aiws, study_uid), timeout=300, what="the cardiac results to be sent back")
        assert [j["state"] for j in study["jobs"]] == ["done"]
        wanted = {r["sop_instance_uid"] for r in study["results"]}
        wait_for(lambda: wanted <= {i["MainDicomTags"].get("SOPInstanceUID")
                                    for i in orthanc.instances_of_study(study_uid)}, timeout=60,
                 what="every result in Orthanc")
        back: dict[str, list[tuple[Path, Dataset]]] = {}
        for inst in orthanc.instances_of_study(study_uid):
            if inst["MainDicomTags"].get("SOPInstanceUID") in wanted:
                path = tmp_path / f"{inst['ID']}.dcm"
                path.write_bytes(orthanc.file_of(inst["ID"]))
                ds = dcmread(path)
                back.setdefault(KINDS[str(ds.SOPClassUID)], []).append((path, ds))
        assert {k: len(v) for k, v in back.items()} == {"sc": 1, "seg": 2, "sr": 1}
        for path, ds in [item for items in back.values() for item in items]:
            assert ds.StudyInstanceUID == study_uid
            assert dciodvfy_errors(path) == [], path
        lv = sr_values(back["sr"][0][1])["lv-function"]
        edv, esv, ef, mass = lv["18026-5"], lv["18148-7"], lv["8811-2"], lv["18087-7"]
        assert abs(edv - truth.lv.edv_ml) <= 0.05 * truth.lv.edv_ml, (edv, truth.lv.edv_ml)
        assert abs(esv - truth.lv.esv_ml) <= 0.05 * truth.lv.esv_ml, (esv, truth.lv.esv_ml)
        assert abs(ef - truth.lv.ef_pct) <= 3.0, (ef, truth.lv.ef_pct)
        assert abs(mass - truth.lv_mass_g) <= 0.10 * truth.lv_mass_g, (mass, truth.lv_mass_g)
        assert lv["LVEDVi"] == pytest.approx(edv / truth.bsa_m2, rel=0.01)  # indexed by the Mosteller BSA
        assert lv["82799009"] == pytest.approx((edv - esv) * round(params.heart_rate_bpm) / 1000, rel=0.01)
        segs = sorted((ds for _, ds in back["seg"]), key=lambda ds: int(ds.InstanceNumber))
        assert len({ds.SeriesInstanceUID for ds in segs}) == 1 and len({ds.SOPInstanceUID for ds in segs}) == 2
        all_frames: set[str] = set()
        for seg, phase in zip(segs, ("ED", "ES")):
            labels = [s.SegmentLabel for s in seg.SegmentSequence]
            assert labels == [f"{n} {phase}" for n in ("LV blood pool", "LV myocardium", "RV blood pool")]
            referenced = {item.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence
                          for item in s.ReferencedInstanceSequence}
            assert len(referenced) == params.n_slices  # one frame of this phase at every location
            all_frames |= referenced
        assert len(all_frames) == 2 * params.n_slices  # ED and ES are different frames
    finally:
        aiws.stop()
