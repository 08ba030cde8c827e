"""End to end through Orthanc: phantom calcium-score CTs of both phantom families go to AIWS; SR + SEG + SC come
back into each study, valid under dciodvfy, with scores matching the phantom truth within the quality bars."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydicom import dcmread

from models.coronary_ct.calcium import CORONARIES
from models.coronary_ct.outputs import SITES
from peers import AiwsProcess, dciodvfy_errors, free_port, have_tool, wait_for
from pipeline_e2e import KINDS, fetch_results, pipeline_config, sr_groups, study_sent
from training.coronary_ct.dicom import study_info, write_series
from training.coronary_ct.evaluate import agatston_within_bar
from training.coronary_ct.phantom import make_phantom, truth_score
from training.coronary_ct.phantom_b import make_phantom_b

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not (have_tool("Orthanc") and have_tool("dciodvfy")), reason="Orthanc/dicom3tools")]


def _check_study(orthanc, aiws: AiwsProcess, study_uid: str, phantom, tmp_path: Path) -> dict:
    """The study's results back in Orthanc: SR + SEG + SC in the same study, valid, scores within the bars; the SR's
    groups."""
    _, _, truth = truth_score(phantom)
    study = wait_for(lambda: study_sent(aiws, study_uid), timeout=240, what="the calcium results to be sent back")
    assert [j["state"] for j in study["jobs"]] == ["done"]
    summary = study["jobs"][0]["summary"]
    assert summary["cac_drs"] == truth.cac_drs
    (tmp_path / study_uid).mkdir()
    back = dict(fetch_results(orthanc, study, tmp_path / study_uid))
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
    return groups


def test_calcium_score_round_trip_through_orthanc(tmp_path: Path, orthanc_factory) -> None:
    """A family-A study and a family-B study (issue 28: another heart and coronary tree, 2.5 or 3 mm slices,
    correlated noise, calcium of the aortic valve, root, wall, mitral annulus and costal cartilage) through one
    Orthanc and one service. Family-B seed 10045 is one the shipped labeller (version 2) labels right vessel by
    vessel; across family B it does so for 63 % of vessel cases (its model card), so this checks the pipeline's
    plumbing and the "not scored" list on the other family's DICOM, not the network's family-B figures."""
    phantoms = {"A": make_phantom(10003), "B": make_phantom_b(10045)}  # unseen seeds (training uses < 5000)
    for phantom in phantoms.values():
        assert truth_score(phantom)[2].total.agatston > 100  # calcium in several vessels
    assert {"valve", "mitral", "cartilage"} <= {c.kind for c in phantoms["B"].calcifications}
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    uids = {}
    for family, phantom in phantoms.items():
        info = study_info(phantom.seed, phantom.increment_mm)
        files = write_series(phantom, tmp_path / f"ct-{family}", replace(info, seed_text=f"cac-{family}-{phantom.seed}"))
        uids[family] = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        orthanc.upload(files)
    assert uids["A"] != uids["B"]
    config = pipeline_config([("coronary_ct", "CT")], orthanc.dicom_port)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config, dicom_port=aiws_port).start()
    try:
        resources = [orthanc.post("/tools/lookup", uid.encode())[0]["ID"] for uid in uids.values()]
        orthanc.post("/modalities/AIWS/store", {"Resources": resources, "Synchronous": True})
        groups = {family: _check_study(orthanc, aiws, uids[family], phantoms[family], tmp_path)
                  for family in phantoms}
        not_scored = [g for tid, g in groups["B"].items() if tid.startswith("not-scored-")]
        assert not_scored, "family B's valve, annulus and cartilage calcium is not listed as not scored"
    finally:
        aiws.stop()
