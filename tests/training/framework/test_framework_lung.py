"""The lung task on the training framework, through the real CLI: a few iterations from MSD (an empty-label case
skipped and listed) and from DICOM SEG; FROC plot and operating point; a framework run evaluated on another
dataset; fine-tuning shipped lung_nodules version 6 from its ONNX file and publishing the result."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fw_data import lung_dicom_seg, lung_luna16, lung_msd

from aiws.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3] / "triton_repo"

TINY = """
task = "lung_nodules"
seed = 4
[train]
iterations = 3
batch_size = 2
val_every = 3
log_every = 1
bootstrap = 100
threads = 2
[options]
channels = [4, 8, 16]
strides = [2, 2]
patch = [32, 32, 32]
roi = [32, 32, 32]
samples_per_case = 1
max_batch_size = 2
"""


def _train(tmp_path: Path, data: Path, fmt: str, run: str, *extra: str, config: str = TINY) -> int:
    (tmp_path / f"{run}.toml").write_text(config)
    return main(["train", "lung_nodules", "--data", str(data), "--format", fmt, "--config", str(tmp_path / f"{run}.toml"),
                 "--run", run, "--runs-dir", str(tmp_path / "runs"), "--no-progress", *extra])


def test_msd_trains_lists_the_empty_case_and_reports_froc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = lung_msd(tmp_path / "Task06_Lung", cases=3, empty=1)
    assert _train(tmp_path, data, "msd", "msd") == 0
    run = tmp_path / "runs" / "msd"
    assert json.loads((run / "skipped.json").read_text()) == [
        {"case_id": "lung_003", "reason": "label map is empty (no labelled voxel)"}]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] | {"sha256_of_file_hashes": None} == {
        "dataset": "Task06_Lung", "format": "msd", "cases": 3, "skipped": 1, "files": 6,
        "sha256_of_file_hashes": None}  # the 3 usable images and their labels
    for key in ("dice", "cpm", "sensitivity_at_1_fp"):
        est = metrics["validation"][key]
        assert est["n_cases"] == 1 and (est["value"] is None or 0 <= est["value"] <= 1)
    op = metrics["operating_point"]
    assert op["max_fp_per_scan"] == 0.5 and 0 <= op["score_threshold"] <= 1
    assert (run / "evaluation" / "froc.png").stat().st_size > 1000
    records = json.loads((run / "evaluation" / "records.json").read_text())
    assert [r["n_truth"] for r in records] == [1]
    assert "cpm:" in capsys.readouterr().out

    other = lung_msd(tmp_path / "Other", cases=2, seed=9)
    assert main(["evaluate", str(run), "--data", str(other), "--format", "msd"]) == 0
    report = json.loads((run / "evaluation-Other" / "metrics.json").read_text())
    assert report["runtime"] == "onnxruntime" and report["validation"]["dice"]["n_cases"] == 2


def test_dicom_seg_trains(tmp_path: Path) -> None:
    data = lung_dicom_seg(tmp_path / "hospital", studies=2)
    assert _train(tmp_path, data, "dicom-seg", "seg") == 0
    metrics = json.loads((tmp_path / "runs" / "seg" / "metrics.json").read_text())
    assert metrics["dataset"]["format"] == "dicom-seg" and metrics["dataset"]["cases"] == 2
    assert metrics["iterations"] == 3


FINETUNE = """
task = "lung_nodules"
seed = 5
[train]
iterations = 1
batch_size = 1
lr = 1e-6
schedule = "constant"
warmup_iterations = 0
val_every = 1
bootstrap = 20
threads = 2
[options]
patch = [32, 32, 32]
samples_per_case = 1
"""


def test_fine_tune_shipped_version_6_and_publish_version_7(tmp_path: Path) -> None:
    from models.runtime import RuntimeSettings, make_runtime

    repo = tmp_path / "repo"
    (repo / "lung_nodules").mkdir(parents=True)
    shutil.copy(REPO / "lung_nodules" / "config.pbtxt", repo / "lung_nodules")
    shutil.copytree(REPO / "lung_nodules" / "6", repo / "lung_nodules" / "6")
    data = lung_msd(tmp_path / "Task06_Lung", cases=2)
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        assert runtime.resolve_version("lung_nodules") == 6
        assert _train(tmp_path, data, "msd", "ft", "--from-version", "6", "--repository", str(repo),
                      config=FINETUNE) == 0
        metrics = json.loads((tmp_path / "runs" / "ft" / "metrics.json").read_text())
        assert metrics["weights_from"].startswith("lung_nodules version 6 (model.onnx (")
        assert main(["export", str(tmp_path / "runs" / "ft"), "--repository", str(repo)]) == 0
        assert runtime.resolve_version("lung_nodules") == 7  # hot reload: listed per job
        x = np.zeros((1, 1, 96, 96, 96), dtype=np.float32)
        old = runtime.infer("lung_nodules", {"ct": x}, 6).outputs["nodule_prob"]
        new = runtime.infer("lung_nodules", {"ct": x}, 7).outputs["nodule_prob"]
    assert np.abs(new - old).max() < 0.05  # one step at lr 1e-6 from version 6's weights, not from scratch
    card = json.loads((repo / "lung_nodules" / "7" / "model_card.json").read_text())
    assert card["provenance"]["fine_tuned_from"] == "lung_nodules version 6"
    assert "froc.png" in card["plots"] and (repo / "lung_nodules" / "7" / "froc.png").is_file()


def test_luna16_points_become_balls_of_the_published_diameter(tmp_path: Path) -> None:
    import tomllib

    from training.framework.config import config_from_mapping
    from training.framework.spec import get_task
    from training.lung_nodules.task import prepare
    from training.readers import read_dataset

    data = lung_luna16(tmp_path / "LUNA16", scans=3)
    task = get_task("lung_nodules")
    config = config_from_mapping(tomllib.loads(TINY), task.options, task.name, "tiny")
    case = read_dataset(data, "luna16").cases[0]
    prepared = prepare(case, config.options)
    (nodule,) = case.nodules
    assert prepared.mask.sum() == pytest.approx(4 / 3 * np.pi * (nodule.diameter_mm / 2) ** 3, rel=0.3)
    assert prepared.image[prepared.mask].mean() > 0.55 > prepared.image[~prepared.mask].mean()  # on the ball
    assert _train(tmp_path, data, "luna16", "luna") == 0
    assert json.loads((tmp_path / "runs" / "luna" / "metrics.json").read_text())["dataset"]["cases"] == 3
