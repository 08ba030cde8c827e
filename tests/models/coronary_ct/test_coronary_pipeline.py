"""The coronary_ct pipeline in-process with the shipped labeller: a study without coronary calcium (no SEG,
A0), the stage timings, and the refusal of unsuitable series."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from factories import make_ct_series
from models.coronary_ct.pipeline import CoronaryCalciumPipeline, CoronarySettings
from models.errors import ModelError, NoSuitableSeries
from models.pipeline import PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from peers import dciodvfy_errors, have_tool
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import make_phantom, truth_score

REPO = Path(__file__).resolve().parents[3] / "triton_repo"


@pytest.fixture(scope="module")
def pipeline() -> CoronaryCalciumPipeline:
    return CoronaryCalciumPipeline(make_runtime(RuntimeSettings(model_repository=REPO, device="cpu")))


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_no_coronary_calcium_gives_a0_sr_and_sc_without_seg(pipeline: CoronaryCalciumPipeline, tmp_path: Path) -> None:
    phantom = make_phantom(10001)  # unseen seed with bone, aortic calcium and no coronary calcium
    _, _, truth = truth_score(phantom)
    assert truth.total.agatston == 0
    files = write_series(phantom, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    result = pipeline.run(PipelineRequest(study_uid, {"s": tuple(files)}, out, "2.25"))
    assert result.summary["cac_drs"] == "A0" and result.summary["total"]["agatston"] == 0
    assert result.summary["candidates"] > 50  # bone and aortic calcium were candidates, none counted
    assert sorted(f.kind for f in result.files) == ["sc", "sr"]
    assert set(result.timings_s) == {"load", "network", "measures", "writing"}
    assert all(v >= 0 for v in result.timings_s.values())
    for f in result.files:
        assert dciodvfy_errors(f.path) == []
        assert dcmread(f.path).StudyInstanceUID == study_uid
    again = pipeline.run(PipelineRequest(study_uid, {"s": tuple(files)}, tmp_path, "2.25"))
    assert sorted(f.path.name for f in again.files) == sorted(f.path.name for f in result.files)  # same UIDs


def test_thin_slices_only_is_not_suitable(pipeline: CoronaryCalciumPipeline, tmp_path: Path) -> None:
    files = make_ct_series(tmp_path / "in", n_slices=12, spacing=(0.7, 0.7, 1.0))
    with pytest.raises(NoSuitableSeries):
        pipeline.run(PipelineRequest("1.2.3", {"s": tuple(files)}, tmp_path, "2.25"))


def test_settings_from_mapping() -> None:
    settings = CoronarySettings.from_mapping({"calibration_mg_per_cm3_hu": 0.8})
    assert settings.calibration_mg_per_cm3_hu == 0.8 and settings.select["Modality"] == "^CT$"
    with pytest.raises(ModelError):
        CoronarySettings.from_mapping({"calibration": 0.8})
    with pytest.raises(ModelError):
        CoronarySettings.from_mapping({"calibration_mg_per_cm3_hu": -1})


def test_mass_score_reported_when_calibrated(tmp_path: Path) -> None:
    phantom = make_phantom(10003)
    _, _, truth = truth_score(phantom)
    files = write_series(phantom, tmp_path / "in")
    runtime = make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))
    calibrated = CoronaryCalciumPipeline(runtime, CoronarySettings(calibration_mg_per_cm3_hu=0.8))
    result = calibrated.run(PipelineRequest("1.2.3", {"s": tuple(files)}, tmp_path, "2.25"))
    expected = 0.8 * sum(les.area_mm2 * phantom.increment_mm / 1000 * les.mean_hu
                         for les, t in zip(*truth_score(phantom)[:2]) if t.vessel.value != "not coronary")
    assert result.summary["total"]["mass_mg"] == pytest.approx(expected, abs=0.1)
    sr = dcmread(next(f.path for f in result.files if f.kind == "sr"))
    codes = {item.ConceptNameCodeSequence[0].CodeValue for item in _walk(sr.ContentSequence)}
    assert "122661" in codes and "112058" in codes  # Calcium Mass and Calcium score
    assert truth.total.mass_mg is None  # the truth score was computed without calibration


def _walk(items):  # type: ignore[no-untyped-def]
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))
