"""Training + export smoke test: a few steps on phantom images generated on the fly, an ONNX candidate with
dynamic image size that the runtime serves and that computes what the torch network computes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.cardiac_mri.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.runtime import RuntimeSettings, make_runtime, read_model_config
from models.runtime.validate import check_against_onnx
from training.cardiac_mri.train import TrainConfig, load_network, sample_batch, train

pytestmark = pytest.mark.slow


def test_batches_are_normalised_crops_with_all_labels() -> None:
    cfg = TrainConfig(batch_size=8, crop=96)
    x, y = sample_batch(cfg, np.random.default_rng(1))
    assert x.shape == (8, 1, 96, 96) and y.shape == (8, 1, 96, 96)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) <= {0, 1, 2, 3} and {1, 2}.issubset(set(np.unique(y)))


def test_train_a_few_steps_and_export(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=3, val_every=3, val_seeds=(5000, 5001), batch_size=2, crop=64, channels=(4, 8, 16, 32),
                      threads=1)
    result = train(cfg, tmp_path / "run")
    run = result.run_dir
    for name in ("config.json", "checkpoint.pt", "history.json", "curves.png", "metrics.json"):
        assert (run / name).is_file(), name
    model_dir = run / "export" / MODEL_NAME
    spec = read_model_config(model_dir / "config.pbtxt")
    check_against_onnx(spec, model_dir / "1" / "model.onnx")
    card = json.loads((model_dir / "1" / "model_card.json").read_text())
    assert "Papillary muscles" in " ".join(card["conventions"])

    x = np.random.default_rng(0).normal(size=(3, 1, 176, 208)).astype(np.float32)  # not the export size
    with torch.no_grad():
        expected = load_network(result.checkpoint)(torch.from_numpy(x)).numpy()
    with make_runtime(RuntimeSettings(model_repository=run / "export", device="cpu")) as runtime:
        got = runtime.infer(MODEL_NAME, {INPUT_NAME: x}).outputs[OUTPUT_NAME]
    assert got.shape == (3, 4, 176, 208)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_shipped_config_parses() -> None:
    cfg = TrainConfig.from_file(Path(__file__).resolve().parents[2] / "training/cardiac_mri/configs/default.json")
    assert cfg.train_seeds[1] <= 5000 and cfg.val_seeds[0] >= 5000
