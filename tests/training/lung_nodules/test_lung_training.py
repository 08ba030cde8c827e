"""The retraining loop end to end, small: train a few iterations, evaluate, export twice, load and run.

Uses the real CLI (``aiws train / evaluate / export``), real phantoms, MONAI, torch.onnx and
ONNX Runtime; only the sizes are tiny so it runs in tens of seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiws.cli import main
from models.lung_nodules.inference import detect_nodules
from models.runtime import RuntimeSettings, make_runtime
from models.runtime.model_config import read_model_config
from models.runtime.validate import check_against_onnx
from training.lung_nodules.dataset import write_phantom_dataset
from training.lung_nodules.phantom import PhantomConfig, generate_phantom

pytestmark = pytest.mark.slow

TINY = PhantomConfig(max_matrix=110, z_extent_mm=40.0, nodules=(1, 2), diameter_mm=(8.0, 14.0))

RUN_TOML = """
seed = 3
[network]
channels = [4, 8, 16]
strides = [2, 2]
[train]
iterations = 4
batch_size = 2
patch = [32, 32, 32]
val_every = 4
val_cases = 1
log_every = 2
[export]
model_name = "lung_nodules"
roi = [32, 32, 32]
max_batch_size = 2
spacing_mm = [2.0, 2.0, 2.0]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loop")
    write_phantom_dataset(root / "train", [1, 2, 3], TINY)
    write_phantom_dataset(root / "eval", [501], TINY)
    (root / "run.toml").write_text(RUN_TOML)
    code = main(["train", "lung_nodules", "--data", str(root / "train"), "--config", str(root / "run.toml"),
                 "--run", "tiny", "--runs-dir", str(root / "runs"), "--no-progress"])
    assert code == 0
    return {"root": root, "run": root / "runs" / "tiny"}


def test_training_writes_an_inspectable_run(run: dict[str, Path]) -> None:
    folder = run["run"]
    summary = json.loads((folder / "run.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert summary["config_sha256"] == config["sha256"] and summary["training_seeds"] == [1, 2, 3]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    assert any("validation" in r for r in rows)
    for name in ("learning_curves.png", "train.log", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    spec = read_model_config(folder / "export" / "lung_nodules" / "config.pbtxt")
    check_against_onnx(spec, folder / "export" / "lung_nodules" / "1" / "model.onnx")
    assert spec.inputs[0].dims == (1, 32, 32, 32) and spec.parameters["spacing_mm"] == "2,2,2"


def test_evaluate_refuses_training_seeds_and_reports_bars(run: dict[str, Path], capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "train")]) == 1
    assert "were used to train" in capsys.readouterr().err
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "eval")]) == 0
    out = capsys.readouterr().out
    assert "sensitivity_5mm_at_1fp" in out and "diameter_mae_mm" in out
    result = json.loads((run["run"] / "evaluation.json").read_text())
    assert result["seeds"] == [501] and set(result["bars"]) >= {"type_accuracy", "lung_rads_exam_agreement"}


def test_export_twice_and_hot_reload(run: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    if not (run["run"] / "evaluation.json").exists():
        assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "eval")]) == 0
    repo = run["root"] / "triton_repo"
    assert main(["export", str(run["run"]), "--repository", str(repo)]) == 0
    runtime = make_runtime(RuntimeSettings(model_repository=repo, device="cpu"))
    phantom = generate_phantom(501, TINY)
    first = detect_nodules(runtime, phantom.hu, phantom.grid)
    assert first.version == 1 and first.probability.shape == first.net_grid.shape
    assert main(["export", str(run["run"]), "--repository", str(repo)]) == 0
    assert "version 2" in capsys.readouterr().out
    second = detect_nodules(runtime, phantom.hu, phantom.grid)  # same runtime object: no restart
    assert second.version == 2
    np.testing.assert_allclose(second.probability, first.probability, rtol=1e-5, atol=1e-6)
    card = json.loads((repo / "lung_nodules" / "2" / "model_card.json").read_text())
    assert card["version"] == 2 and len(card["provenance"]["training_config_sha256"]) == 64
    assert card["metrics"]["evaluation"]["seeds"] == [501]
    assert card["trained_on"]["families"] == {"a": [1, 2, 3]}  # the train family of the cross-family table
    text = (repo / "lung_nodules" / "2" / "model_card.md").read_text()
    for heading in ("Intended use", "Trained on", "Metrics", "Limitations", "Provenance"):
        assert f"## {heading}" in text


def test_fine_tune_starts_from_a_published_onnx(run: dict[str, Path], tmp_path: Path) -> None:
    """init_checkpoint may name a published version's model.onnx (versions up to 6 have no checkpoint): its
    initializers load as the network's exact weights; a network of other channels is refused."""
    import torch

    from models.lung_nodules.network import NetworkConfig, build_network
    from training.lung_nodules.train import load_initial_weights

    if not (run["run"] / "evaluation.json").exists():
        assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "eval")]) == 0
    assert main(["export", str(run["run"]), "--repository", str(tmp_path)]) == 0
    trained = torch.load(run["run"] / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    network = build_network(NetworkConfig(channels=(4, 8, 16), strides=(2, 2)))
    load_initial_weights(network, tmp_path / "lung_nodules" / "1" / "model.onnx")
    loaded = network.state_dict()
    assert set(loaded) == set(trained["state_dict"])
    for name, value in trained["state_dict"].items():
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no initializer"):
        load_initial_weights(build_network(NetworkConfig(channels=(8, 16, 32), strides=(2, 2))),
                             tmp_path / "lung_nodules" / "1" / "model.onnx")
