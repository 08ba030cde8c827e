"""Training + export smoke test: a few steps on phantoms, calibration and evaluation through ONNX Runtime,
publication into a model repository, and the published model loaded the way the service loads it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from aiws.cli import main
from models.mammography.inference import load_calibration, runtime_predictor
from models.mammography.network import INPUT_NAME, OUTPUT_NAME, TILE
from models.mammography.pipeline import MammographyPipeline
from models.pipeline import PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from models.runtime.model_config import read_model_config
from models.runtime.validate import check_against_onnx
from training.mammography.config import ConfigError, load_config
from training.mammography.dicom import write_exam
from training.mammography.phantom import PhantomConfig, make_exam

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "training/mammography/configs/smoke.json"

pytestmark = pytest.mark.slow


def test_train_evaluate_export_and_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(SMOKE)
    run = tmp_path / "runs" / "smoke"
    assert main(["train", "mammography", "--config", str(SMOKE), "--run", "smoke",
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    assert (run / "export" / config.name / "1" / "model.onnx").is_file()
    history = json.loads((run / "history.json").read_text())
    assert history["step"][-1] == config.steps and all(np.isfinite(history["val_loss"]))
    assert (run / "curves.png").stat().st_size > 1000

    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert "density category agreement" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["exams"] == 2 and metrics["images"] == 8 and sum(metrics["exam_score_counts"]) == 2
    assert set(metrics) >= {"density_agreement_exam", "mass", "calcification"}

    repo = tmp_path / "repo"
    assert main(["export", str(run), "--repository", str(repo)]) == 0
    assert main(["export", str(run), "--repository", str(repo)]) == 0
    assert f"published {config.name} version 2" in capsys.readouterr().out  # the next export is the next version
    spec = read_model_config(repo / config.name / "config.pbtxt")
    assert [t.name for t in spec.inputs] == [INPUT_NAME] and [t.name for t in spec.outputs] == [OUTPUT_NAME]
    check_against_onnx(spec, repo / config.name / "2" / "model.onnx")
    card = (repo / config.name / "2" / "model_card.md").read_text()
    assert "BI-RADS" in card and "25, 50, 75" in card and config.hash in card

    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        version = runtime.resolve_version(config.name)
        assert version == 2
        calibration = load_calibration(runtime, config.name, version)
        assert len(calibration.exam_cut_points) == 9
        logits = runtime_predictor(runtime, config.name, version)(np.zeros((1, 1, 600, TILE + 40), np.float32))
    assert logits.shape == (1, 3, 600, TILE + 40) and np.isfinite(logits).all()

    # the service's pipeline runs the published version on a DICOM study
    exam = make_exam(30_001, PhantomConfig(spacing_mm=0.5))
    files = write_exam(exam, tmp_path / "study")
    out = tmp_path / "out"
    out.mkdir()
    request = PipelineRequest(study_uid=str(dcmread(files[0]).StudyInstanceUID), series={"s": tuple(files)},
                              out_dir=out, uid_root="2.25")
    pipeline = MammographyPipeline(make_runtime(RuntimeSettings(model_repository=repo, device="cpu")),
                                   model=config.name)
    output = pipeline.run(request)
    assert [f.kind for f in output.files] == ["sr", "gsps", "gsps", "gsps", "gsps", "sc"]
    assert output.summary["model_version"] == 2 and output.summary["views"] == ["LCC", "LMLO", "RCC", "RMLO"]
    assert set(output.timings_s) == {"load", "preprocess", "network", "analysis", "writing"}
    assert dcmread(output.files[0].path).SoftwareVersions == f"1.0.0 model {config.name} v2"


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ConfigError, match="stepz"):
        load_config(bad)
