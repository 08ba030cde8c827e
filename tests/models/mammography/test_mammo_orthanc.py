"""End to end with a real PACS: a four-view phantom screening study goes from Orthanc to AIWS and the
mammography results (SR + one GSPS per image + summary SC) come back into the same study, valid DICOM.
A study of "For Processing" images only is refused with the reason."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from peers import AiwsProcess, dciodvfy_errors, free_port, wait_for
from pipeline_e2e import KINDS, fetch_results, pipeline_config, study_sent
from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam
from training.mammography.phantom_b import make_exam_b, write_exam_b

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "triton_repo" / "mammo_detector"

pytestmark = [pytest.mark.network, pytest.mark.slow]

def test_four_view_study_round_trip(tmp_path: Path, orthanc_factory) -> None:
    if not MODEL.is_dir():
        pytest.fail(f"{MODEL} is missing: train and export the mammography model (make train-mammo)")
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    exam = make_exam(30_007, PhantomConfig(spacing_mm=0.2, lesion_rate=1.0))
    study_uid, refused_uid = generate_uid(), generate_uid()
    files = write_exam(exam, tmp_path / "mg", MgStudyOptions(study_uid=study_uid, magnification=1.1))
    files += write_exam(exam, tmp_path / "raw", MgStudyOptions(study_uid=study_uid, for_processing=True,
                                                              accession="MG0001"))[:1]
    refused = write_exam(exam, tmp_path / "raw2", MgStudyOptions(study_uid=refused_uid, for_processing=True,
                                                                patient_id="MGPHANTOM2", accession="MG0002"))
    # family B (issue 28): another parenchyma texture and breast shape, a vendor's pixel scale and SIGMOID VOI LUT,
    # a mass in the right breast only
    family_b = write_exam_b(make_exam_b(60_003, ("R",)), tmp_path / "mg-b", sigmoid=True)
    family_b_uid = str(dcmread(family_b[0], stop_before_pixels=True).StudyInstanceUID)
    orthanc.upload(files + refused + family_b)
    ids = [orthanc.post("/tools/lookup", uid.encode())[0]["ID"] for uid in (study_uid, refused_uid, family_b_uid)]
    config = pipeline_config([("mammography", "MG")], orthanc.dicom_port)
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port)
    (tmp_path / "aiws").mkdir()
    aiws.start()
    try:
        orthanc.post("/modalities/AIWS/store", {"Resources": ids, "Synchronous": True})
        wait_for(lambda: [s for s in aiws.api("/api/sends") if s["state"] == "done"], timeout=240,
                 what="the mammography results to be sent back")
        study = aiws.api(f"/api/studies/{study_uid}")
        job = study["jobs"][0]
        assert job["state"] == "done", job
        summary = job["summary"]
        assert summary["views"] == ["LCC", "LMLO", "RCC", "RMLO"]
        assert any("For Processing" in s for s in summary["skipped"])
        assert summary["density"] in "abcd" and 1 <= summary["exam_score"] <= 10
        kinds = sorted(r["kind"] for r in study["results"])
        assert kinds == ["gsps", "gsps", "gsps", "gsps", "sc", "sr"]

        wait_for(lambda: len(orthanc.instances_of_study(study_uid)) == 5 + 6, timeout=60,
                 what="six results in the Orthanc study")
        back = [i for i in orthanc.instances_of_study(study_uid)
                if i["MainDicomTags"]["SOPInstanceUID"] in {r["sop_instance_uid"] for r in study["results"]}]
        assert len(back) == 6
        for item in back:
            path = tmp_path / f"{item['ID']}.dcm"
            path.write_bytes(orthanc.file_of(item["ID"]))
            ds = dcmread(path)
            assert ds.StudyInstanceUID == study_uid
            assert ds.SeriesDescription.startswith("AIWS mammography")
            assert dciodvfy_errors(path) == [], ds.SOPClassUID

        refused_job = wait_for(lambda: [j for j in aiws.api(f"/api/studies/{refused_uid}")["jobs"]
                                        if j["state"] == "failed"], timeout=60, what="the refused job")[0]
        assert "For Processing" in str(refused_job)
        _check_family_b(orthanc, aiws, family_b_uid, tmp_path / "back-b")
    finally:
        aiws.stop()
    shutil.rmtree(tmp_path / "raw2", ignore_errors=True)


def _check_family_b(orthanc, aiws: AiwsProcess, study_uid: str, folder: Path) -> None:
    """The family-B study went through like family A's: four views read, an SR, a GSPS per image and the summary SC
    back in its study, valid DICOM. Its figures (density, marks) are the cross-family evaluation's, not asserted
    here: the shipped detector (version 1, trained on family A) does not hold on family B (its model card)."""
    study = wait_for(lambda: study_sent(aiws, study_uid), timeout=240, what="the family-B results to be sent back")
    summary = study["jobs"][0]["summary"]
    assert summary["views"] == ["LCC", "LMLO", "RCC", "RMLO"] and summary["density"] in "abcd"
    folder.mkdir()
    back = fetch_results(orthanc, study, folder)
    assert sorted(KINDS[str(ds.SOPClassUID)] for _, ds in back) == ["gsps", "gsps", "gsps", "gsps", "sc", "sr"]
    for path, ds in back:
        assert ds.StudyInstanceUID == study_uid
        assert dciodvfy_errors(path) == [], ds.SOPClassUID
