"""Training framework parts on known inputs: bootstrap intervals, splits and folds, device choice, the run
configuration, the exporter's config.pbtxt against the shipped models', FROC and agreement statistics."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.runtime.model_config import parse_model_config
from training.framework.config import RunConfigError, config_from_mapping, load_run_config
from training.framework.data import fold_splits, split_cases
from training.framework.device import precision, resolve_device
from training.framework.export import config_text
from training.framework.metrics import agreement, bootstrap, cohen_kappa, confusion, froc
from training.framework.spec import (
    TASKS,
    ExportSpec,
    Metric,
    TaskError,
    TensorSpec,
    get_task,
    mean_of_records,
    unet_encoder,
)

REPO = Path(__file__).resolve().parents[3] / "triton_repo"


def test_bootstrap_interval_of_a_mean_matches_the_standard_error() -> None:
    records = [{"case_id": str(i), "x": float(i)} for i in range(100)]  # mean 49.5, SE 2.90
    est = bootstrap(records, mean_of_records, resamples=2000, seed=1)["x"]
    assert est.value == pytest.approx(49.5)
    assert est.low == pytest.approx(49.5 - 1.96 * 2.90, abs=0.8) and est.high == pytest.approx(49.5 + 1.96 * 2.90, abs=0.8)
    assert bootstrap(records, mean_of_records, resamples=2000, seed=1)["x"] == est  # seeded: reproducible
    same = bootstrap([{"x": 0.7}] * 20, mean_of_records, resamples=500, seed=0)["x"]
    assert (same.value, same.low, same.high) == pytest.approx((0.7, 0.7, 0.7))
    assert math.isnan(bootstrap(records, mean_of_records, resamples=0)["x"].low)


def test_bootstrap_of_a_proportion_covers_the_binomial_interval() -> None:
    records = [{"hit": 1.0 if i < 30 else 0.0} for i in range(60)]  # p = 0.5, SE 0.0645
    est = bootstrap(records, mean_of_records, resamples=2000, seed=7)["hit"]
    assert est.low == pytest.approx(0.5 - 1.96 * 0.0645, abs=0.03) and est.high == pytest.approx(0.5 + 1.96 * 0.0645,
                                                                                                  abs=0.03)


def test_splits_keep_groups_together_and_folds_cover_every_case_once() -> None:
    groups = ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4", "p5", "p5"]
    train, val = split_cases(groups, 0.2, np.random.default_rng(0))
    assert sorted(train + val) == list(range(10)) and len(val) == 2
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in val})
    folds = fold_splits(groups, 3, np.random.default_rng(0))
    seen = sorted(i for _, v in folds for i in v)
    assert seen == list(range(10))
    for tr, v in folds:
        assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in v})
    with pytest.raises(ValueError, match="--folds 6"):
        fold_splits(groups, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2"):
        split_cases(["only", "only"], 0.2, np.random.default_rng(0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the choice on a machine without CUDA")
def test_device_auto_on_this_cpu_is_the_cpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert precision("auto", torch.device("cpu")).dtype is None  # no autocast on the CPU by default
    assert precision("bf16", torch.device("cpu")).dtype == torch.bfloat16
    with pytest.raises(TaskError, match="no CUDA device"):
        resolve_device("cuda:0")
    with pytest.raises(TaskError, match="needs a CUDA device"):
        precision("fp16", torch.device("cpu"))
    with pytest.raises(TaskError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")


def test_run_configuration_names_the_bad_key() -> None:
    task = get_task("cardiac_mri")
    with pytest.raises(RunConfigError, match=r"\[train\] unknown key\(s\) iteration"):
        config_from_mapping({"train": {"iteration": 3}}, task.options, task.name, "run.toml")
    with pytest.raises(RunConfigError, match="train.lr -1"):
        config_from_mapping({"train": {"lr": -1}}, task.options, task.name, "run.toml")
    with pytest.raises(RunConfigError, match=r"options.patch \[90, 96\]"):
        config_from_mapping({"options": {"patch": [90, 96]}}, task.options, task.name, "run.toml")
    with pytest.raises(RunConfigError, match="task 'lung_nodules' is not 'cardiac_mri'"):
        config_from_mapping({"task": "lung_nodules"}, task.options, task.name, "run.toml")


@pytest.mark.parametrize("name", ["lung_nodules", "cardiac_mri"])
def test_default_configs_load_and_round_trip_through_the_run_folder_toml(name: str, tmp_path: Path) -> None:
    task = get_task(name)
    config = load_run_config(task.default_config, task.options, task.name)
    (tmp_path / "config.toml").write_text(config.to_toml())
    again = load_run_config(tmp_path / "config.toml", task.options, task.name)
    assert again == config and again.config_hash() == config.config_hash()


@pytest.mark.parametrize("name", ["lung_nodules", "cardiac_mri"])
def test_exported_config_is_the_shipped_models_config(name: str) -> None:
    task = get_task(name)
    spec = task.export(load_run_config(task.default_config, task.options, task.name))
    shipped = parse_model_config((REPO / spec.model / "config.pbtxt").read_text(), "shipped")
    ours = parse_model_config(config_text(spec), "ours")
    assert (ours.name, ours.max_batch_size, ours.inputs, ours.outputs, ours.parameters) == \
        (shipped.name, shipped.max_batch_size, shipped.inputs, shipped.outputs, shipped.parameters)


def test_export_spec_refuses_an_example_that_does_not_fit() -> None:
    with pytest.raises(TaskError, match="does not fit input image"):
        ExportSpec("m", (TensorSpec("image", (1, 64, 64)),), (TensorSpec("out", (2, 64, 64)),), ((1, 1, 32, 64),), 4)
    with pytest.raises(TaskError, match="data type"):
        TensorSpec("x", (1,), "TYPE_FLOAT")


def test_registry_names_the_aiws_train_tasks() -> None:
    assert set(TASKS) == {"lung_nodules", "cardiac_mri", "coronary_ct", "mammography"}
    with pytest.raises(TaskError, match="is not one of"):
        get_task("coronary_calcium")


def test_unet_encoder_is_the_contracting_path() -> None:
    from monai.networks.nets import UNet

    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1)
    encoder = {k.split(".conv")[0].split(".residual")[0] for k in net.state_dict() if unet_encoder(k)}
    assert encoder == {"model.0", "model.1.submodule.0", "model.1.submodule.1.submodule"}


def test_froc_agreement_and_kappa_on_known_values() -> None:
    records = [{"n_truth": 2, "candidate_scores": [0.9, 0.8, 0.3], "candidate_hits": [0, -1, 1]},
               {"n_truth": 1, "candidate_scores": [0.7, 0.6], "candidate_hits": [-1, 0]}]
    out = froc(records)
    # by score: 0.9 hit, 0.8 FP, 0.7 FP, 0.6 hit, 0.3 hit; FPs per case after each: 0, .5, 1, 1, 1
    assert out["sensitivity_at_0.5_fp"] == pytest.approx(1 / 3)
    assert out["sensitivity_at_1_fp"] == pytest.approx(1.0)
    assert out["cpm"] == pytest.approx((3 * 1 / 3 + 4 * 1.0) / 7)  # rates 1/8, 1/4, 1/2 and 1, 2, 4, 8
    stats = agreement([50, 60, 70], [52, 61, 73])
    assert stats["bias"] == pytest.approx(2.0) and stats["mae"] == pytest.approx(2.0)
    assert stats["loa_high"] - stats["bias"] == pytest.approx(1.96 * 1.0)
    m = confusion(["a", "b", "b", "c"], ["a", "b", "c", "c"], ["a", "b", "c"])
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert cohen_kappa(np.eye(3) * 5) == pytest.approx(1.0)
    assert cohen_kappa(m) == pytest.approx(0.6363636, abs=1e-5)


def test_monitor_never_takes_nan_as_better() -> None:
    assert Metric("dice").better(0.5, None) and not Metric("dice").better(math.nan, 0.1)
    assert Metric("mae", higher_is_better=False).better(1.0, 2.0)
