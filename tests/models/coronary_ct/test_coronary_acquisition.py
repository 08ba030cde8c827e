"""Agatston's 130 HU threshold and weights are defined at 120 kVp on ECG-gated scans (Agatston 1990, JACC
15:827; REFERENCE.md): another or an unknown tube voltage and a missing or absent ECG gating are named as
warnings in the SR and the summaries (acquisition_check = "warn", the default) or refuse the series
("refuse")."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from models.coronary_ct.calcium import acquisition_problems
from models.coronary_ct.pipeline import CoronaryCalciumPipeline, CoronarySettings, ecg_gating, tube_voltage_kvp
from models.errors import ModelError, NoSuitableSeries
from models.pipeline import PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from peers import dciodvfy_errors, have_tool
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import make_phantom

REPO = Path(__file__).resolve().parents[3] / "triton_repo"


@pytest.mark.parametrize(("kvp", "gating", "expected"), [
    (120.0, "gated", []),
    (120.4, "gated", []),                                    # within 0.5 kV of 120
    (100.0, "gated", ["acquired at 100 kVp, not 120 kVp"]),
    (140.0, "gated", ["acquired at 140 kVp, not 120 kVp"]),
    (None, "gated", ["tube voltage not stated"]),
    (120.0, None, ["ECG gating not stated"]),
    (120.0, "not gated", ["not ECG-gated"]),
    (80.0, "not gated", ["acquired at 80 kVp", "not ECG-gated"]),
])
def test_acquisition_problems(kvp: float | None, gating: str | None, expected: list[str]) -> None:
    problems = acquisition_problems(kvp, gating)
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected))


def _ds(**tags: object) -> Dataset:
    ds = Dataset()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(("header", "gating"), [
    (_ds(CardiacSynchronizationTechnique="PROSPECTIVE"), "gated"),
    (_ds(CardiacSynchronizationTechnique="RETROSPECTIVE"), "gated"),
    (_ds(CardiacSynchronizationTechnique="NONE"), "not gated"),
    (_ds(TriggerTime=450.0), "gated"),
    (_ds(NominalPercentageOfCardiacPhase=70), "gated"),
    (_ds(SharedFunctionalGroupsSequence=[_ds(CardiacSynchronizationSequence=[
        _ds(CardiacSynchronizationTechnique="PROSPECTIVE")])]), "gated"),
    (_ds(KVP=120), None),
])
def test_ecg_gating_from_the_header(header: Dataset, gating: str | None) -> None:
    assert ecg_gating(header) == gating


def test_tube_voltage_from_the_header() -> None:
    assert tube_voltage_kvp(_ds(KVP="100")) == 100.0 and tube_voltage_kvp(_ds()) is None


def test_acquisition_check_setting() -> None:
    assert CoronarySettings.from_mapping({}).acquisition_check == "warn"
    assert CoronarySettings.from_mapping({"acquisition_check": "refuse"}).acquisition_check == "refuse"
    with pytest.raises(ModelError, match="acquisition_check"):
        CoronarySettings.from_mapping({"acquisition_check": "ignore"})


def _series(tmp_path: Path, seed: int = 10001, **tags: object) -> tuple[str, tuple[Path, ...]]:
    files = write_series(make_phantom(seed), tmp_path / "in")
    for path in files:
        ds = dcmread(path)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), tuple(files)


@pytest.fixture(scope="module")
def runtime():  # type: ignore[no-untyped-def]
    return make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_100_kvp_not_gated_is_scored_with_warnings_in_sr_and_summary(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study_uid, files = _series(tmp_path, 10003, KVP=100, CardiacSynchronizationTechnique="NONE")  # with calcium
    out = tmp_path / "out"
    out.mkdir()
    result = CoronaryCalciumPipeline(runtime).run(PipelineRequest(study_uid, {"s": files}, out, "2.25"))
    warnings = result.summary["acquisition_warnings"]
    assert [w.split(":")[0] for w in warnings] == ["acquired at 100 kVp, not 120 kVp",
                                                   "not ECG-gated (Cardiac Synchronization Technique NONE)"]
    sr = next(f.path for f in result.files if f.kind == "sr")
    texts = [str(el.value) for el in dcmread(sr).iterall() if el.VR in ("UT", "ST", "LT", "LO")]
    assert f"acquisition_warning_1={warnings[0]}" in texts and f"acquisition_warning_2={warnings[1]}" in texts
    seg = next(f.path for f in result.files if f.kind == "seg")
    seg_params = str(dcmread(seg).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
                     .AlgorithmParameters)
    assert "acquired at 100 kVp" in seg_params and "not ECG-gated" in seg_params
    assert all(dciodvfy_errors(f.path) == [] for f in result.files)


def test_gated_120_kvp_has_no_warning(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study_uid, files = _series(tmp_path, CardiacSynchronizationTechnique="PROSPECTIVE")
    result = CoronaryCalciumPipeline(runtime).run(PipelineRequest(study_uid, {"s": files}, tmp_path, "2.25"))
    assert result.summary["acquisition_warnings"] == []


def test_refuse_names_the_rule_before_scoring(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study_uid, files = _series(tmp_path, KVP=100, TriggerTime=400.0)
    pipeline = CoronaryCalciumPipeline(runtime, CoronarySettings(acquisition_check="refuse"))
    with pytest.raises(NoSuitableSeries, match="acquired at 100 kVp, not 120 kVp") as err:
        pipeline.run(PipelineRequest(study_uid, {"s": files}, tmp_path, "2.25"))
    assert "acquisition_check = refuse" in str(err.value) and "ECG" not in str(err.value)
