"""The framework loop on CUDA with mixed precision (float16 autocast + gradient scaler): skipped without a GPU."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from fw_data import acdc

from training.framework.config import load_run_config
from training.framework.device import resolve_device
from training.framework.loop import LoopOptions, fit
from training.framework.run import load_dataset
from training.framework.spec import get_task

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_a_few_iterations_with_amp_on_cuda(tmp_path: Path) -> None:
    assert resolve_device("auto").type == "cuda"
    task = get_task("cardiac_mri")
    config = load_run_config(task.default_config, task.options, task.name)
    config = dataclasses.replace(config.replace_train(iterations=6, val_every=3, batch_size=4, amp="auto"),
                                 options=dataclasses.replace(config.options, patch=(32, 32), crops_per_slice=1))
    dataset = load_dataset(task, acdc(tmp_path / "ACDC", patients=2), "acdc")
    result = fit(task, config, dataset.cases[:2], dataset.cases[2:], tmp_path / "run", LoopOptions(device="auto",
                                                                                                  progress=False))
    assert result.device.startswith("cuda") and result.precision == "float16"
    assert result.iterations == 6 and len(result.validations) == 2
    assert all(torch.isfinite(p).all() for p in result.module.state_dict().values())
    assert json.dumps(result.validations)  # plain values
