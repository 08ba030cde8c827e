"""End to end: a phantom chest CT pushed from Orthanc comes back as SEG + SR + SC + PDF in the same study,
with the phantom's nodules, their growth against a prior fetched from Orthanc (C-FIND + C-MOVE back to
our own SCP; C-GET is covered in tests/aiws/test_ledger.py), and their Lung-RADS categories."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from scipy import ndimage

from imaging.segread import read_seg
from imaging.volume import load_volume
from peers import AiwsProcess, dciodvfy_errors, free_port, wait_for
from training.ct_dicom import CtSeriesInfo, write_ct_series
from training.lung_nodules.phantom import PhantomConfig, generate_phantom

pytestmark = [pytest.mark.network, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3] / "triton_repo"
# A whole chest (as a scanner sends it): lungs do not run into the first and last slice as in a slab.
PHANTOM = PhantomConfig(pixel_mm=(0.8, 0.8), slice_mm=(1.25, 1.25), nodules=(2, 2),
                        diameter_mm=(9, 13), kind_weights=(0.5, 0.5, 0.0, 0.0))
SEED = 7

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = ORTHANC_PORT
query_retrieve = "c-move"
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = ORTHANC_PORT
pdf_report = true
[study]
quiet_seconds = 1
[[routes]]
pipeline = "lung_nodules"
send_to = ["pacs"]
[routes.match]
Modality = "CT"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


def _prior_hu(hu: np.ndarray, labels: np.ndarray, scale: float = 0.8) -> np.ndarray:
    """The same chest a year earlier: nodule 1 absent (it is new now), nodule 2 the same shape *scale* times
    smaller (it grew)."""
    prior = hu.astype(np.float32).copy()
    lung_hu = float(np.median(hu[(labels == 0) & (hu < -700) & (hu > -950)]))
    box = ndimage.find_objects((labels == 2).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in box)
    patch, mask = prior[box].copy(), labels[box] == 2
    rng = np.random.default_rng(1)
    gone = labels > 0
    prior[gone] = lung_hu + rng.normal(0, 10, int(gone.sum()))
    small = ndimage.zoom(patch, scale, order=1)
    small_mask = ndimage.zoom(mask.astype(np.float32), scale, order=1) >= 0.5
    start = [b.start + (b.stop - b.start - n) // 2 for b, n in zip(box, small.shape, strict=True)]
    region = prior[tuple(slice(a, a + n) for a, n in zip(start, small.shape, strict=True))]
    region[small_mask] = small[small_mask]
    return prior


@pytest.mark.skipif(not (REPO / "lung_nodules" / "config.pbtxt").exists(), reason="no lung_nodules model exported")
def test_chest_ct_with_prior_round_trip(tmp_path: Path, orthanc_factory) -> None:
    phantom = generate_phantom(SEED, PHANTOM)
    truth = {n["label"]: n for n in phantom.nodules}
    patient = CtSeriesInfo(seed_text="lung-e2e", patient_id="PHANTOM-LUNG-E2E")
    current_uid, prior_uid = generate_uid(), generate_uid()
    current = write_ct_series(phantom.hu.astype(np.float32), phantom.affine, tmp_path / "current",
                              CtSeriesInfo(**{**patient.__dict__, "seed_text": "cur", "study_uid": current_uid,
                                              "study_date": "20260110"}))
    prior = write_ct_series(_prior_hu(phantom.hu, phantom.labels), phantom.affine, tmp_path / "prior",
                            CtSeriesInfo(**{**patient.__dict__, "seed_text": "pri", "study_uid": prior_uid,
                                            "study_date": "20250105"}))
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    orthanc.upload(current + prior)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)),
                       dicom_port=aiws_port).start()
    try:
        orthanc_id = orthanc.post("/tools/lookup", current_uid.encode())[0]["ID"]
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_id], "Synchronous": True})
        wait_for(lambda: aiws.api("/api/sends?state=done") or aiws.api("/api/jobs?state=failed"),
                 timeout=600, interval=1, what="lung results sent back")
        job = aiws.api("/api/jobs")[0]
        assert job["state"] == "done", job["error"]
        summary = job["summary"]
        assert summary["prior_study_uid"] == prior_uid
        assert [s["study_uid"] for s in aiws.api("/api/studies")] == [current_uid]  # the moved prior is not routed

        found, extra = {}, []
        for n in summary["nodules"]:
            near = min(truth.values(), key=lambda t: np.linalg.norm(np.subtract(t["centre_mm"], n["centre_mm"])))
            if np.linalg.norm(np.subtract(near["centre_mm"], n["centre_mm"])) < 5.0:
                assert near["label"] not in found, "one finding per nodule"
                found[near["label"]] = n
            else:
                extra.append(n)
        assert sorted(found) == [1, 2], "both nodules found"
        # A false positive is possible (version 2: 0.17 per scan on the evaluation phantoms; here hilar vessel
        # roots): it must rank below both nodules, and is reported as completely as a nodule (checked below).
        assert all(e["score"] < min(n["score"] for n in found.values()) for e in extra)
        for label, n in found.items():
            assert n["type"] == truth[label]["type"]
            assert abs(n["mean_diameter_mm"] - truth[label]["mean_diameter_mm"]) <= 2.0
        assert found[1]["status"] == "new"
        assert found[2]["growth_mm"] > 1.5 and found[2]["vdt_days"] > 0
        # nodule 2 is part-solid, 0.8 times smaller a year earlier: Lung-RADS v2022 judges its growth on the solid
        # component (about 3.9 -> 4.9 mm, near the 1.5 mm threshold), so the status follows the measured change
        assert found[2]["type"] == "part-solid"
        assert found[2]["status"] == ("growing" if found[2]["solid_growth_mm"] > 1.5 else "ggo-growing")
        assert summary["lung_rads"] == "4B"  # the new 12.4 mm solid nodule
        assert summary["indication"] == "unknown" and "Indication not known" in summary["fleischner"]

        back = orthanc.instances_of_study(current_uid)
        ours = {i["ID"]: dcmread_bytes(orthanc.file_of(i["ID"]), tmp_path / f"{i['ID']}.dcm")
                for i in back if i["MainDicomTags"].get("SOPInstanceUID") in
                {r["sop_instance_uid"] for r in aiws.api(f"/api/jobs/{job['id']}")["results"]}}
        modalities = sorted(dcmread(p).Modality for p in ours.values())
        assert modalities == ["DOC"] + ["OT"] * len(summary["nodules"]) + ["SEG", "SR"]  # a key image per nodule
        for path in ours.values():
            assert dciodvfy_errors(path) == [], path
        sr = next(p for p in ours.values() if dcmread(p).Modality == "SR")
        assert subprocess.run(["dsrdump", str(sr)], capture_output=True).returncode == 0
        seg = next(p for p in ours.values() if dcmread(p).Modality == "SEG")
        volume = load_volume(current)
        for segment in read_seg(dcmread(seg), volume):
            centre = volume.index_to_lps(np.argwhere(segment.mask).mean(axis=0)[None])[0]
            assert min(np.linalg.norm(centre - np.array(n["centre_mm"])) for n in summary["nodules"]) < 2.0
        assert len(read_seg(dcmread(seg), volume)) == len(summary["nodules"])
        log = aiws.log()
        assert "PHANTOM-LUNG-E2E" not in log
        json.dumps(summary)
    finally:
        aiws.stop()


@pytest.mark.skipif(not (REPO / "lung_nodules" / "config.pbtxt").exists(), reason="no lung_nodules model exported")
def test_family_b_chest_round_trip(tmp_path: Path, orthanc_factory) -> None:
    """A family-B chest (issue 28: other anatomy, sharp kernel, 110 kVp, unsigned pixels with intercept -1024)
    goes through Orthanc and the lung pipeline; every result passes dciodvfy. What was found is printed."""
    from training.lung_nodules.phantom_b import PhantomConfigB, generate_phantom_b, write_dicom_b

    phantom = generate_phantom_b(13, PhantomConfigB(pixel_mm=(0.8, 0.8), max_matrix=384, diameter_mm=(9.0, 13.0),
                                                    kinds=("solid", "juxtapleural-round")))
    study_uid = generate_uid()
    files = write_dicom_b(phantom, tmp_path / "b", CtSeriesInfo(seed_text="lung-b", study_uid=study_uid,
                                                                patient_id="PHANTOM-LUNG-B"))
    aiws_port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", aiws_port)})
    orthanc.upload(files)
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)),
                       dicom_port=aiws_port).start()
    try:
        orthanc_id = orthanc.post("/tools/lookup", study_uid.encode())[0]["ID"]
        orthanc.post("/modalities/AIWS/store", {"Resources": [orthanc_id], "Synchronous": True})
        wait_for(lambda: aiws.api("/api/sends?state=done") or aiws.api("/api/jobs?state=failed"),
                 timeout=600, interval=1, what="lung results sent back")
        job = aiws.api("/api/jobs")[0]
        assert job["state"] == "done", job["error"]
        found = [(n["mean_diameter_mm"], n["lung_rads"], n["centre_mm"]) for n in job["summary"]["nodules"]]
        print("family B truth", [(n["kind"], n["mean_diameter_mm"], n["lung_rads"], n["centre_mm"])
                                 for n in phantom.nodules], "found", found)
        hits = [t for t in phantom.nodules if any(np.linalg.norm(np.subtract(t["centre_mm"], n["centre_mm"])) < 5.0
                                                  for n in job["summary"]["nodules"])]
        assert hits, "no family-B nodule found"
        results = {r["sop_instance_uid"] for r in aiws.api(f"/api/jobs/{job['id']}")["results"]}
        back = [i for i in orthanc.instances_of_study(study_uid) if i["MainDicomTags"].get("SOPInstanceUID") in results]
        assert back, "results in the same study in Orthanc"
        for i in back:
            path = dcmread_bytes(orthanc.file_of(i["ID"]), tmp_path / f"{i['ID']}.dcm")
            assert dciodvfy_errors(path) == [], path
        assert "PHANTOM-LUNG-B" not in aiws.log()
    finally:
        aiws.stop()


def dcmread_bytes(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path
