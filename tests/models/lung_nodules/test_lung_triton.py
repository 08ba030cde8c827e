"""The lung pipeline in the real service with ``backend = "triton"``: a chest CT arrives while the Triton
server is down, the job is retried (not failed), completes once the server is up, and its nodules and
categories equal those of the same pipeline run in-process with ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from models.lung_nodules.pipeline import LungNodulePipeline
from models.pipeline import PipelineRequest
from models.runtime import ModelRepository
from models.runtime.ort import OnnxRuntime
from peers import AiwsProcess, free_port, storescu, wait_for
from pipeline_e2e import REPO, pipeline_config, study_sent
from training.ct_dicom import CtSeriesInfo, write_ct_series
from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from triton_server import TritonServer, triton_available

pytestmark = [pytest.mark.network, pytest.mark.slow,
              pytest.mark.skipif(not (REPO / "lung_nodules" / "config.pbtxt").exists(),
                                 reason="no lung_nodules model exported"),
              pytest.mark.skipif(not triton_available(), reason="no .venv-triton (run 'make setup')")]

PHANTOM = PhantomConfig(pixel_mm=(0.8, 0.8), slice_mm=(1.25, 1.25), z_extent_mm=60, nodules=(2, 2),
                        diameter_mm=(9, 13), kind_weights=(0.5, 0.5, 0.0, 0.0))


def _key(summary: dict) -> list[tuple]:  # type: ignore[type-arg]
    return [(n["type"], n["mean_diameter_mm"], n["lung_rads"], n["status"]) for n in summary["nodules"]]


def test_triton_down_job_retried_then_same_result_as_in_process(tmp_path: Path, orthanc_factory) -> None:
    phantom = generate_phantom(11, PHANTOM)
    files = write_ct_series(phantom.hu.astype(np.float32), phantom.affine, tmp_path / "ct",
                            CtSeriesInfo(seed_text="lung-triton", patient_id="PHANTOM-LUNG-TRITON"))
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    series_uid = str(dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    (tmp_path / "local").mkdir()
    output = LungNodulePipeline(OnnxRuntime(ModelRepository(REPO), "cpu")).run(
        PipelineRequest(study_uid, {series_uid: tuple(files)}, tmp_path / "local", "2.25"))
    assert set(output.timings_s) == {"load", "preprocess", "network", "classifier", "measures", "writing"}
    models = ModelRepository(REPO).models()
    if "lung_nodule_classifier" in models:
        assert output.timings_s["classifier"] > 0  # the latest version's second stage asks the classifier
    local = output.summary

    triton = TritonServer(tmp_path / "triton", REPO, grpc_port=free_port(), http_port=free_port())
    orthanc = orthanc_factory({})
    config = pipeline_config([("lung_nodules", "CT")], orthanc.dicom_port, known_source=False,
                             runtime=f'backend = "triton"\ntriton_url = "{triton.grpc_url}"\ntimeout_seconds = 60',
                             extra="[workers]\nretry_seconds = 1\n")
    (tmp_path / "aiws").mkdir()
    aiws = AiwsProcess(tmp_path / "aiws", config).start()
    try:
        assert storescu("127.0.0.1", aiws.dicom_port, "AIWS", "CT", files).returncode == 0
        retried = wait_for(lambda: [j for j in aiws.api(f"/api/jobs?study_uid={study_uid}")
                                    if j["state"] == "pending" and "retrying" in (j["error"] or "")],
                           timeout=120, what="the job waiting for Triton")[0]
        assert "triton" in retried["error"].lower() or "connect" in retried["error"].lower(), retried["error"]
        triton.start(wait_models=tuple(m for m in ("lung_nodules", "lung_nodule_classifier") if m in models))
        study = wait_for(lambda: study_sent(aiws, study_uid), timeout=300, what="the lung results sent")
        job = study["jobs"][0]
        assert job["attempts"] >= 2
        remote = job["summary"]
        assert remote["lung_rads"] == local["lung_rads"] and len(remote["nodules"]) == len(local["nodules"]) >= 1
        assert _key(remote) == _key(local)
        for a, b in zip(remote["nodules"], local["nodules"], strict=True):
            assert np.allclose(a["centre_mm"], b["centre_mm"], atol=0.05)
            assert a["score"] == pytest.approx(b["score"], abs=0.002)  # second stage, classifier through Triton
            assert a["volume_mm3"] == pytest.approx(b["volume_mm3"], rel=1e-3)
        assert "PHANTOM-LUNG-TRITON" not in aiws.log()
    finally:
        aiws.stop()
        triton.stop()
