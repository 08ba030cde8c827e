"""Training + export smoke test: a few steps on a few phantoms, an ONNX candidate that the runtime serves
and that computes what the torch network computes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.coronary_ct.patches import PATCH_SHAPE
from models.runtime import RuntimeSettings, make_runtime, read_model_config
from models.runtime.validate import check_against_onnx
from training.coronary_ct.train import TrainConfig, load_network, train

pytestmark = pytest.mark.slow


def test_train_a_few_steps_and_export(tmp_path: Path) -> None:
    cfg = TrainConfig(train_seeds=(0, 3), val_seeds=(5000, 5001), bone_per_phantom=10, epochs=1, max_steps=4,
                      batch_size=16, threads=1)
    result = train(cfg, tmp_path / "run")
    run = result.run_dir
    for name in ("config.json", "checkpoint.pt", "history.json", "curves.png", "metrics.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["train_seeds"] == [0, 3]
    model_dir = run / "export" / MODEL_NAME
    spec = read_model_config(model_dir / "config.pbtxt")
    check_against_onnx(spec, model_dir / "1" / "model.onnx")
    card = json.loads((model_dir / "1" / "model_card.json").read_text())
    assert card["provenance"]["training_config_sha256"] == cfg.hash
    assert "Agatston" in " ".join(card["conventions"])
    assert (model_dir / "1" / "model.onnx").stat().st_size < 10 * 2**20

    x = np.random.default_rng(0).normal(size=(5, *PATCH_SHAPE)).astype(np.float32)
    with torch.no_grad():
        expected = load_network(result.checkpoint)(torch.from_numpy(x)).numpy()
    with make_runtime(RuntimeSettings(model_repository=run / "export", device="cpu")) as runtime:
        got = runtime.infer(MODEL_NAME, {INPUT_NAME: x}).outputs[OUTPUT_NAME]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cli_train_evaluate_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``aiws train coronary_ct`` / ``aiws evaluate RUN --seeds`` / ``aiws export RUN`` on a tiny run."""
    from aiws.cli import main

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"train_seeds": [0, 2], "val_seeds": [5000, 5001], "epochs": 1, "max_steps": 2,
                                  "bone_per_phantom": 5, "threads": 1}))
    assert main(["train", "coronary_ct", "--config", str(config), "--run", "tiny", "--runs-dir", str(tmp_path)]) == 0
    run = tmp_path / "tiny"
    assert main(["evaluate", str(run), "--seeds", "10000:10002"]) == 0
    out = capsys.readouterr().out
    assert "coronary_ct evaluation on unseen phantom seeds 10000..10001" in out and "no bone counted" in out
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["phantoms"] == 2 and evaluation["runtime"] == "onnxruntime"
    repo = tmp_path / "repo"
    assert main(["export", str(run), "--repository", str(repo)]) == 0
    card = json.loads((repo / MODEL_NAME / "1" / "model_card.json").read_text())
    assert card["metrics"]["evaluation"]["phantoms"] == 2
    assert main(["export", str(run), "--repository", str(repo)]) == 0  # the next version
    assert (repo / MODEL_NAME / "2" / "model.onnx").is_file()


def test_config_file_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 2, "epoch": 3}))
    with pytest.raises(ValueError, match="epoch"):
        TrainConfig.from_file(path)


def test_shipped_config_parses() -> None:
    cfg = TrainConfig.from_file(Path(__file__).resolve().parents[2] / "training/coronary_ct/configs/default.json")
    assert cfg.train_seeds[1] <= 5000 and cfg.val_seeds[0] >= 5000  # evaluation seeds (>= 10000) stay unseen
