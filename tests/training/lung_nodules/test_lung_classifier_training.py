"""The candidate classifier's run, small: patches from phantoms, train, evaluate, export (real CLI, torch, ORT)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiws.cli import main
from factories import TINY_CLASSIFIER_TOML
from models.lung_nodules.classifier import candidate_patches
from models.lung_nodules.geometry import Grid
from models.runtime.model_config import read_model_config
from models.runtime.repository import ModelRepository
from models.runtime.validate import check_against_onnx
from training.lung_nodules.classifier import classifier_config
from training.lung_nodules.classifier_data import (
    Patches,
    SamplingSettings,
    Truth,
    _cut,
    _label,
    batch,
    shifted,
    truth_of,
)
from training.lung_nodules.config import TrainConfigError
from training.lung_nodules.dataset import write_phantom_dataset
from training.lung_nodules.phantom import PhantomConfig
from training.msd import Case

pytestmark = pytest.mark.slow

TINY = PhantomConfig(max_matrix=110, z_extent_mm=40.0, nodules=(1, 2), diameter_mm=(8.0, 14.0))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifier")
    write_phantom_dataset(root / "train", [1, 2, 3], TINY)
    write_phantom_dataset(root / "eval", [501], TINY)
    (root / "classifier.toml").write_text(TINY_CLASSIFIER_TOML)
    code = main(["train", "lung_nodule_classifier", "--data", str(root / "train"), "--config",
                 str(root / "classifier.toml"), "--run", "c1", "--runs-dir", str(root / "runs"), "--no-progress"])
    assert code == 0
    return {"root": root, "run": root / "runs" / "c1"}


def test_training_writes_an_inspectable_run(run: dict[str, Path]) -> None:
    folder = run["run"]
    summary = json.loads((folder / "run.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert summary["model"] == "lung_nodule_classifier" and summary["training_seeds"] == [1, 2, 3]
    assert summary["config_sha256"] == config["sha256"] and summary["best_step"] in (3, 6)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in rows if "validation" in r] == [3, 6]
    assert all(0.0 <= r["validation"]["auc"] <= 1.0 for r in rows if "validation" in r)
    assert (folder / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("train.log", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (folder / name).stat().st_size > 0, name
    export = folder / "export" / "lung_nodule_classifier"
    spec = read_model_config(export / "config.pbtxt")
    check_against_onnx(spec, export / "1" / "model.onnx")
    assert spec.inputs[0].dims == (2, 16, 16, 16) and spec.outputs[0].dims == (1,)
    assert spec.version_policy.kind == "all"  # a lung_nodules version names the classifier version it was fitted on
    card = json.loads((export / "1" / "model_card.json").read_text())
    assert card["trained_on"]["phantom_seeds"] == [1, 2, 3] and card["trained_on"]["points_on_nodules"] >= 2
    assert "synthetic phantoms" in card["limitations"][0]


def test_evaluate_refuses_training_seeds_and_reports_patch_figures(run: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "train")]) == 1
    assert "were used to train" in capsys.readouterr().err
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "eval")]) == 0
    assert "AUC" in capsys.readouterr().out
    result = json.loads((run["run"] / "evaluation.json").read_text())
    assert result["seeds"] == [501] and result["positives"] >= 1 and 0.0 <= result["auc"] <= 1.0


def test_an_unknown_network_to_learn_candidates_from_is_named(run: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "lung_nodule_classifier", "--data", str(run["root"] / "train"), "--config",
            str(run["root"] / "classifier.toml"), "--runs-dir", str(tmp_path), "--no-progress"]
    assert main([*args, "--run", "a", "--candidates-from", str(tmp_path / "nope")]) == 1
    assert "not a lung_nodules run" in capsys.readouterr().err
    assert main([*args, "--run", "b", "--candidates-from", str(run["run"])]) == 1  # a classifier run is no network
    assert "not a lung_nodules run" in capsys.readouterr().err
    assert main([*args, "--run", "c", "--candidates-from", "99", "--repository", str(tmp_path)]) == 1
    assert "lung_nodules" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_export_publishes_the_next_classifier_version(run: dict[str, Path], tmp_path: Path) -> None:
    assert main(["export", str(run["run"]), "--repository", str(tmp_path)]) == 0
    assert main(["export", str(run["run"]), "--repository", str(tmp_path)]) == 0
    repo = ModelRepository(tmp_path)
    assert repo.versions("lung_nodule_classifier") == [1, 2]
    card = json.loads((tmp_path / "lung_nodule_classifier" / "2" / "model_card.json").read_text())
    assert card["metrics"]["evaluation"]["seeds"] == [501] and card["provenance"]["run"] == "c1"


def test_a_shifted_training_cube_is_the_cube_at_the_shifted_centre() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((60, 60, 60)).astype(np.float32)
    grid = Grid.axial(image.shape, (1.0, 1.0, 1.0))  # type: ignore[arg-type]
    settings = SamplingSettings(patch=8, jitter=4)
    centre = np.array([30.0, 29.0, 31.0])
    patches = _cut("c", image, grid, [(centre, "truth")], [Truth(grid.to_mm(centre), 6.0, 7.0, "solid")], settings)
    for shift in ([0, 0, 0], [2, -4, 4], [-4, 2, -2]):
        want = candidate_patches(image, (centre + shift)[None], 8)[0]
        np.testing.assert_allclose(shifted(patches, 0, np.array(shift), settings), want, atol=1e-3)  # float16 store
    np.testing.assert_allclose(batch(patches, [0], settings, None)[0], candidate_patches(image, centre[None], 8)[0],
                               atol=1e-3)
    moved = batch(patches, [0, 0, 0], settings, np.random.default_rng(0))
    assert moved.shape == (3, 2, 8, 8, 8) and not np.allclose(moved[0], moved[1])


def test_points_on_a_nodule_edge_are_left_out() -> None:
    truth = [Truth(np.zeros(3), 6.0, 10.0, "solid")]  # hit within 3 mm, edge up to 5 + 2 mm
    assert _label(np.array([0.0, 0.0, 2.9]), truth) == (True, 0)
    assert _label(np.array([0.0, 4.0, 0.0]), truth) == (None, 0)
    assert _label(np.array([7.5, 0.0, 0.0]), truth) == (False, -1)


def test_truth_comes_from_the_label_when_a_case_lists_no_nodules() -> None:
    grid = Grid.axial((20, 20, 20), (2.0, 1.0, 1.0), (-10.0, -10.0, 0.0))
    label = np.zeros((20, 20, 20), dtype=np.uint8)
    label[4:7, 5:11, 5:11] = 1  # 6 x 6 x 6 mm
    found = truth_of(Case("x", np.zeros((20, 20, 20), np.float32), grid, label, {}))
    assert len(found) == 1 and found[0].kind == "labelled"
    np.testing.assert_allclose(found[0].centre_mm, [-2.5, -2.5, 10.0])
    assert found[0].mean_diameter_mm == pytest.approx(2 * (3 * 216 / (4 * np.pi)) ** (1 / 3))
    assert truth_of(Case("y", np.zeros((2, 2, 2), np.float32), grid, None, {})) == []


@pytest.mark.parametrize(("raw", "message"), [
    ({"data": {"patch": 12}}, "multiple of 8"),
    ({"data": {"jitter": 3}}, "even number"),
    ({"train": {"epochs": 3}}, "unknown key"),
    ({"task": "lung_nodules"}, "this trainer handles"),
    ({"network": {"channels": [4, 8, 16, 32, 64]}, "data": {"patch": 8}}, "multiple of 16"),
])
def test_bad_classifier_configurations_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        classifier_config(raw, "c.toml")


def test_patches_of_no_case_have_the_stored_sizes() -> None:
    empty = Patches.concat([], SamplingSettings(patch=16, jitter=4))
    assert empty.fine.shape == (0, 24, 24, 24) and empty.coarse.shape == (0, 20, 20, 20) and len(empty) == 0
