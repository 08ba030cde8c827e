"""End to end through Orthanc: phantom short-axis cines of both families go to AIWS; SR + SEG (ED, ES) + SC come
back into each study, valid under dciodvfy, with volumes, EF and mass matching the phantom truth within the bars."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from peers import AiwsProcess, dciodvfy_errors, free_port, have_tool, wait_for
from pipeline_e2e import KINDS, fetch_results, pipeline_config, sr_groups, study_sent
from training.cardiac_mri.dicom import write_series
from training.cardiac_mri.phantom import make_params, render_all, truth_function
from training.cardiac_mri.phantom_b import make_cine_b, write_cine_b

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not (have_tool("Orthanc") and have_tool("dciodvfy")), reason="Orthanc/dicom3tools")]


def _check_study(orthanc, aiws: AiwsProcess, study_uid: str, truth, n_slices: int, heart_rate_bpm: float,
                 folder: Path) -> None:
    """The study's results back in Orthanc: SR + SEG (ED, ES) + SC in the same study, valid, volumes, EF and mass
    within the bars, each SEG referencing one frame of its phase at every slice location."""
    study = wait_for(lambda: study_sent(aiws, study_uid), timeout=300, what="the cardiac results to be sent back")
    assert [j["state"] for j in study["jobs"]] == ["done"]
    back: dict[str, list[tuple[Path, Dataset]]] = {}
    folder.mkdir()
    for path, ds in fetch_results(orthanc, study, folder):
        back.setdefault(KINDS[str(ds.SOPClassUID)], []).append((path, ds))
    assert {k: len(v) for k, v in back.items()} == {"sc": 1, "seg": 2, "sr": 1}
    for path, ds in [item for items in back.values() for item in items]:
        assert ds.StudyInstanceUID == study_uid
        assert dciodvfy_errors(path) == [], path
    lv = sr_groups(back["sr"][0][1])["lv-function"]
    edv, esv, ef, mass = lv["18026-5"], lv["18148-7"], lv["8811-2"], lv["18087-7"]
    assert abs(edv - truth.lv.edv_ml) <= 0.05 * truth.lv.edv_ml, (edv, truth.lv.edv_ml)
    assert abs(esv - truth.lv.esv_ml) <= 0.05 * truth.lv.esv_ml, (esv, truth.lv.esv_ml)
    assert abs(ef - truth.lv.ef_pct) <= 3.0, (ef, truth.lv.ef_pct)
    assert abs(mass - truth.lv_mass_g) <= 0.10 * truth.lv_mass_g, (mass, truth.lv_mass_g)
    assert lv["LVEDVi"] == pytest.approx(edv / truth.bsa_m2, rel=0.01)  # indexed by the Mosteller BSA
    assert lv["82799009"] == pytest.approx((edv - esv) * round(heart_rate_bpm) / 1000, rel=0.01)
    segs = sorted((ds for _, ds in back["seg"]), key=lambda ds: int(ds.InstanceNumber))
    assert len({ds.SeriesInstanceUID for ds in segs}) == 1 and len({ds.SOPInstanceUID for ds in segs}) == 2
    all_frames: set[str] = set()
    for seg, phase in zip(segs, ("ED", "ES")):
        labels = [s.SegmentLabel for s in seg.SegmentSequence]
        assert labels == [f"{n} {phase}" for n in ("LV blood pool", "LV myocardium", "RV blood pool")]
        referenced = {item.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence
                      for item in s.ReferencedInstanceSequence}
        assert len(referenced) == n_slices  # one frame of this phase at every location
        all_frames |= referenced
    assert len(all_frames) == 2 * n_slices  # ED and ES are different frames


def test_cardiac_function_round_trip_through_orthanc(tmp_path: Path, orthanc_factory) -> None:
    """A family-A cine and a family-B cine (issue 28: bias field, trabeculation and papillary muscles, other slice
    counts and gaps, partial base and apex coverage, breathing shifts) through one Orthanc and one service.
    Family-B seed 10000 is one the shipped segmenter measures within the bars; version 3 does so for EF in 32 of
    32 unseen family-B cines and for EDV and ESV in 31 (its model card), so this checks the pipeline on the other
    family's DICOM, not the network's family-B figures."""
    params = make_params(10002)  # unseen seeds (training uses < 5000)
    images, _ = render_all(params)
    cine_b = make_cine_b(10000)
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    files = {"A": write_series(params, images, tmp_path / "mr-a"), "B": write_cine_b(cine_b, tmp_path / "mr-b")}
    uids = {f: str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID) for f, paths in files.items()}
    assert uids["A"] != uids["B"]
    for paths in files.values():
        orthanc.upload(paths)
    config = pipeline_config([("cardiac_mri", "MR")], orthanc.dicom_port)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port).start()
    try:
        resources = [orthanc.post("/tools/lookup", uid.encode())[0]["ID"] for uid in uids.values()]
        orthanc.post("/modalities/AIWS/store", {"Resources": resources, "Synchronous": True})
        _check_study(orthanc, aiws, uids["A"], truth_function(params), params.n_slices, params.heart_rate_bpm,
                     tmp_path / "back-a")
        _check_study(orthanc, aiws, uids["B"], cine_b.truth(), cine_b.images.shape[1], cine_b.heart_rate_bpm,
                     tmp_path / "back-b")
    finally:
        aiws.stop()
