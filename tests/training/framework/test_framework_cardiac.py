"""The cardiac task on the training framework, through the real CLI: a few iterations from ACDC and from DICOM
SEG, bad cases skipped and listed, no usable case a clear error, k-fold, and fine-tuning shipped version 1
(weights read back from its ONNX file) -> export -> the pipeline, built before, processes a study with it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fw_data import acdc, cardiac_dicom_seg
from pydicom import dcmread

from aiws.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3] / "triton_repo"

TINY = """
task = "cardiac_mri"
seed = 1
[train]
iterations = 4
batch_size = 4
val_every = 2
log_every = 2
bootstrap = 100
threads = 2
[options]
channels = [8, 16, 32]
patch = [32, 32]
crops_per_slice = 1
"""

LAYOUT = {"config.toml", "log.txt", "metrics.json", "skipped.json", "curves", "checkpoints", "evaluation",
          "tensorboard", "export", "framework_run.json"}


def _train(tmp_path: Path, data: Path, fmt: str, run: str, *extra: str, config: str = TINY) -> int:
    (tmp_path / f"{run}.toml").write_text(config)
    return main(["train", "cardiac_mri", "--data", str(data), "--format", fmt, "--config", str(tmp_path / f"{run}.toml"),
                 "--run", run, "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--device", "auto", *extra])


def test_acdc_trains_into_the_common_run_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = acdc(tmp_path / "ACDC", patients=3)
    (data / "training" / "patient003" / "patient003_frame05_gt.nii.gz").unlink()  # a bad case: ES label missing
    assert _train(tmp_path, data, "acdc", "acdc") == 0
    run = tmp_path / "runs" / "acdc"
    assert LAYOUT <= {p.name for p in run.iterdir()}
    skipped = json.loads((run / "skipped.json").read_text())
    assert skipped == [{"case_id": "patient003_ES", "reason": "patient003_frame05_gt.nii.gz: missing (ES is frame 5 "
                                                                 "in Info.cfg)"}]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["iterations"] == 4 and metrics["dataset"]["cases"] == 5
    dice = metrics["validation"]["dice_mean"]
    assert 0 <= dice["value"] <= 1 and dice["ci95"][0] <= dice["value"] <= dice["ci95"][1]
    assert [v["iteration"] for v in metrics["validations"]] == [2, 4]
    assert (run / "curves" / "learning_curves.png").stat().st_size > 1000
    assert (run / "evaluation" / "bland_altman_lv_volume.png").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    card = json.loads((run / "export" / "cardiac_cine_segmenter" / "1" / "model_card.json").read_text())
    assert card["trained_on"]["dataset"] == "ACDC" and card["trained_on"]["cases"] == 5
    assert [c["files"] for c in card["trained_on"]["per_case"]] == [3] * 5  # Info.cfg, the frame, its labels
    assert all(len(c["sha256"]) == 64 for c in card["trained_on"]["per_case"])
    files = json.loads((run / "dataset.json").read_text())["sources"]
    assert {"name": "training/patient001/Info.cfg", "sha256": files[0]["sha256"]} in files
    assert str(tmp_path) not in json.dumps(card)  # names and hashes only, no machine path
    markdown = (run / "export" / "cardiac_cine_segmenter" / "1" / "model_card.md").read_text()
    assert "![learning_curves](learning_curves.png)" in markdown
    out = capsys.readouterr().out
    assert "dice_mean:" in out and "95 % CI" in out


def test_dicom_seg_trains_and_a_seg_without_heart_labels_is_skipped(tmp_path: Path) -> None:
    data = cardiac_dicom_seg(tmp_path / "hospital", studies=3)
    from fw_data import _seg

    other = sorted((data / "study2" / "img").iterdir())
    (data / "study2" / "seg.dcm").unlink()
    _seg(other, np.ones((3, 32, 32), dtype=np.uint8), ["Liver"]).save_as(data / "study2" / "liver.dcm")
    assert _train(tmp_path, data, "dicom-seg", "seg") == 0
    skipped = json.loads((tmp_path / "runs" / "seg" / "skipped.json").read_text())
    uid = str(dcmread(other[0], stop_before_pixels=True).SeriesInstanceUID)
    assert skipped == [{"case_id": uid, "reason": "no LV, myocardium or RV among the labels (Liver)"}]


def test_a_dataset_without_a_usable_case_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = acdc(tmp_path / "ACDC", patients=1)
    for gt in (data / "training" / "patient001").glob("*_gt.nii.gz"):
        gt.unlink()
    assert _train(tmp_path, data, "acdc", "none") == 1
    err = capsys.readouterr().err
    assert "no usable acdc case (2 skipped: patient001_ED: patient001_frame01_gt.nii.gz: missing" in err
    assert not (tmp_path / "runs" / "none").exists()


def test_k_fold_reports_each_fold_and_the_mean(tmp_path: Path) -> None:
    data = acdc(tmp_path / "ACDC", patients=3)
    assert _train(tmp_path, data, "acdc", "folds", "--folds", "3", "--max-iterations", "2") == 0
    metrics = json.loads((tmp_path / "runs" / "folds" / "metrics.json").read_text())
    assert [f["fold"] for f in metrics["folds"]] == [0, 1, 2]
    assert all(f["validation_cases"] == 2 for f in metrics["folds"])  # a patient's ED and ES in one fold
    values = [f["validation"]["dice_mean"]["value"] for f in metrics["folds"]]
    pooled = metrics["validation"]["dice_mean"]
    assert pooled["fold_mean"] == pytest.approx(np.mean(values), abs=1e-5) and pooled["folds"] == values
    assert pooled["n_cases"] == 6 and pooled["ci95"][0] <= pooled["value"] <= pooled["ci95"][1]  # out-of-fold, pooled
    assert (tmp_path / "runs" / "folds" / "folds" / "2" / "checkpoints" / "best.pt").is_file()


FINETUNE = """
task = "cardiac_mri"
seed = 2
[train]
iterations = 2
batch_size = 2
lr = 1e-7
schedule = "constant"
val_every = 2
bootstrap = 50
threads = 2
[options]
patch = [32, 32]
crops_per_slice = 1
"""


def test_fine_tune_shipped_version_export_hot_reload_and_process_a_study(tmp_path: Path) -> None:
    import torch

    from models.cardiac_mri.pipeline import CardiacFunctionPipeline
    from models.pipeline import PipelineRequest
    from models.runtime import RuntimeSettings, make_runtime
    from training.cardiac_mri.dicom import write_series
    from training.cardiac_mri.phantom import make_params, render_all
    from training.framework.config import load_run_config
    from training.framework.export import load_version_weights
    from training.framework.spec import get_task

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "cardiac_cine_segmenter", repo / "cardiac_cine_segmenter")
    new = 1 + max(int(p.name) for p in (repo / "cardiac_cine_segmenter").iterdir() if p.name.isdigit())  # 3: 2 ships
    task = get_task("cardiac_mri")
    config = load_run_config(task.default_config, task.options, task.name)
    net = task.network(config)
    source = load_version_weights(net, repo / "cardiac_cine_segmenter" / "1", task.export(config), tmp_path / "p.onnx")
    assert "matched by value" in source and not source.startswith("model.onnx (0 ")
    x = np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32)
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        shipped = runtime.infer("cardiac_cine_segmenter", {"image": x}, 1).outputs["logits"]
    with torch.no_grad():
        ours = net.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(ours - shipped).max() < 1e-3  # every weight, PReLU slopes included, came back

    params = make_params(10003)
    images, _ = render_all(params)
    files = write_series(params, images, tmp_path / "mr")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        pipeline = CardiacFunctionPipeline(runtime)  # built before the new version exists
        data = acdc(tmp_path / "ACDC", patients=2)
        assert _train(tmp_path, data, "acdc", "ft", "--from-version", "1", "--freeze-encoder", "--repository",
                      str(repo), config=FINETUNE) == 0
        metrics = json.loads((tmp_path / "runs" / "ft" / "metrics.json").read_text())
        assert metrics["from_version"] == "cardiac_cine_segmenter version 1" and metrics["frozen_parameters"] > 0
        best = torch.load(tmp_path / "runs" / "ft" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
        frozen = [k for k in best if k.startswith("model.0.conv") and k.endswith("weight")]
        assert frozen and all(torch.equal(best[k], net.state_dict()[k]) for k in frozen)  # the encoder stayed
        assert main(["export", str(tmp_path / "runs" / "ft"), "--repository", str(repo)]) == 0
        version_dir = repo / "cardiac_cine_segmenter" / str(new)
        assert {"model.onnx", "state_dict.pt", "model_card.md", "learning_curves.png"} <= {p.name for p in version_dir.iterdir()}
        out = tmp_path / "out"
        out.mkdir()
        result = pipeline.run(PipelineRequest(study_uid, {"s": tuple(files)}, out, "2.25"))
    assert result.summary["model_version"] == new
    assert {f.kind for f in result.files} >= {"sr", "seg", "sc"}
    sr = dcmread(next(f.path for f in result.files if f.kind == "sr"))
    assert f"model cardiac_cine_segmenter v{new}" in str(sr.SoftwareVersions)
    assert 20 < result.summary["LVEF"] < 90  # the slightly tuned network still measures the phantom


def test_evaluate_a_shipped_version_on_local_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = acdc(tmp_path / "Local", patients=2, size=48)
    out = tmp_path / "report"
    assert main(["evaluate", "--version", "1", "--task", "cardiac_mri", "--data", str(data), "--format", "acdc",
                 "--repository", str(REPO), "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == "cardiac_cine_segmenter" and report["version"] == 1
    assert report["dataset"]["cases"] == 4 and report["runtime"] == "onnxruntime"
    for key in ("dice_lv", "dice_myo", "dice_rv", "ef_bias_points"):
        est = report["validation"][key]
        assert est["n_cases"] == 4 and set(est) >= {"value", "ci95"}
    assert len(json.loads((out / "evaluation" / "records.json").read_text())) == 4
    assert (out / "evaluation" / "bland_altman_ef.png").is_file()  # both phases of both patients
    assert "cardiac_cine_segmenter version 1 on Local (acdc): 4 case(s), 0 skipped" in capsys.readouterr().out
    assert main(["evaluate", "--version", "1", "--data", str(data), "--format", "acdc"]) == 1
    assert "--task TASK is required" in capsys.readouterr().err
