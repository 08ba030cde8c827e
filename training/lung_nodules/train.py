"""Training loop for the lung-nodule network (MONAI UNet, Dice + cross-entropy, nodule-biased patches).

A run folder holds everything to inspect and rerun: ``config.json`` (validated configuration and
its hash), ``train.log``, ``metrics.jsonl`` (loss per log step, validation per check),
``learning_curves.png``, ``checkpoints/{last,best}.pt``, ``run.json`` (summary) and ``export/``
(the best network as ONNX with ``config.pbtxt`` and a model card, ready for ``aiws evaluate``).
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.lungmask import lung_mask
from models.lung_nodules.network import build_network
from models.lung_nodules.preprocess import InputSpec
from training.curves import plot_learning_curves
from training.lung_nodules.config import TrainConfig
from training.lung_nodules.data import PatchSampler, Sample, prepare
from training.lung_nodules.dataset import dataset_families, dataset_seeds
from training.lung_nodules.export import candidate_card, load_weights_from_onnx, write_candidate
from training.lung_nodules.metrics import ScanResult, choose_threshold, detection_record, dice, froc, summarize
from training.msd import Case, case_names, read_case

LOGGER = logging.getLogger(__name__)


@dataclass(eq=False)
class ValCase:
    case: Case
    sample: Sample
    lung: np.ndarray  # on sample.grid


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def log_to_run(run_dir: Path) -> logging.Handler:
    """Log the ``training`` package at INFO into ``RUN/train.log``; returns the handler (remove it at the end)."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("training").addHandler(handler)
    logging.getLogger("training").setLevel(logging.INFO)
    return handler


def load_data(data_dir: Path, config: TrainConfig, spec: InputSpec) -> tuple[list[Sample], list[ValCase]]:
    """Training samples and validation cases (the last ``val_cases`` of a seeded shuffle)."""
    names = case_names(data_dir)
    order = np.random.default_rng(config.seed).permutation(len(names))
    n_val = min(config.train.val_cases, max(len(names) - 1, 0))
    val_names = {names[i] for i in order[len(names) - n_val:]}
    train, val = [], []
    for name in names:
        case = read_case(data_dir, name)
        sample = prepare(case, spec, surface_negatives=config.train.surface_negatives)
        if name in val_names:
            lo, hi = spec.hu_window
            val.append(ValCase(case, sample, lung_mask(sample.image.astype(np.float32) * (hi - lo) + lo, sample.grid)))
        else:
            train.append(sample)
    LOGGER.info("data %s: %d training, %d validation cases", data_dir, len(train), len(val))
    return train, val


def validate(network: Any, val: list[ValCase], config: TrainConfig) -> tuple[dict[str, Any], list[ScanResult]]:
    """Sliding-window validation (torch, Gaussian blending, the export ROI) with the post-processing."""
    import torch
    from monai.inferers import sliding_window_inference

    network.eval()
    scans, net_dice = [], []
    settings = CandidateSettings(**{**config.postprocess.__dict__, "min_score": config.postprocess.prob_threshold})
    with torch.no_grad():
        for vc in val:
            image = torch.from_numpy(vc.sample.image.astype(np.float32))[None, None]
            logits = sliding_window_inference(image, config.export.roi, config.export.max_batch_size, network,
                                              overlap=0.25, mode="gaussian")
            prob = torch.softmax(logits, dim=1)[0, 1].numpy()
            net_dice.append(dice(prob >= 0.5, vc.sample.label > 0))
            found = find_nodules(prob, vc.sample.grid, vc.case.image, vc.case.grid, vc.lung, settings)
            scans.append(ScanResult(vc.case.name, vc.case.meta.get("nodules", []),
                                    [detection_record(n) for n in found]))
    network.train()
    summary = summarize(scans, config.postprocess.min_score)
    summary["dice_net_grid"] = round(float(np.mean(net_dice)), 4) if net_dice else None
    summary["froc"] = froc(scans)["points"]
    return summary, scans


def warmup_cosine_lr(step: int, iterations: int, lr: float) -> float:
    """Learning rate at *step*: linear warm-up over the first 5 % of *iterations*, then cosine decay to 0."""
    warm = max(1, iterations // 20)
    if step < warm:
        return lr * (step + 1) / warm
    progress = (step - warm) / max(1, iterations - warm)
    return float(lr * 0.5 * (1 + np.cos(np.pi * progress)))


def _lr(config: TrainConfig, step: int) -> float:
    return warmup_cosine_lr(step, config.train.iterations, config.train.lr)


def _val_score(summary: dict[str, Any]) -> float:
    sens = summary["froc"]["1.0"]["sensitivity"]
    return float(sens + (summary["dice_net_grid"] or 0.0))


def load_initial_weights(network: Any, path: Path) -> None:
    """Fine-tuning: load *path* into *network*: a run's checkpoint (``.pt``) or a published version's
    ``model.onnx`` (``triton_repo/lung_nodules/<N>/model.onnx``: versions up to 6 were published without a
    checkpoint). The exporter wraps the network as ``net`` and keeps every parameter's name, and instance norm
    has no parameters or statistics, so the ONNX initializers are exactly the state dict.

    Raises:
        ValueError: the ONNX file's tensors do not fit the configured network (other channels or strides).
    """
    import torch

    if path.suffix == ".onnx":
        load_weights_from_onnx(network, path, prefix="net.")
        LOGGER.info("weights from %s", path)
        return
    state = torch.load(path, map_location="cpu", weights_only=False)
    network.load_state_dict(state["state_dict"])
    LOGGER.info("weights from %s (step %s)", path, state.get("step"))


def train(config: TrainConfig, data_dir: Path, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train, validate, checkpoint and export the best network into ``run_dir``; returns the run summary."""
    import torch
    from monai.losses import DiceCELoss
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    handler = log_to_run(run_dir)
    try:
        torch.set_num_threads(config.train.threads)
        _seed_everything(config.seed)
        (run_dir / "config.json").write_text(json.dumps({"sha256": config.config_hash(), **config.to_dict()},
                                                        indent=2), encoding="utf-8")
        spec = InputSpec(config.export.spacing_mm, config.export.hu_window)
        train_samples, val = load_data(data_dir, config, spec)
        sampler = PatchSampler(train_samples, config.train.patch, config.train.positive_fraction,
                               np.random.default_rng(config.seed + 1), config.train.confounder_fraction,
                               config.train.positives_per_nodule)
        network = build_network(config.network)
        if config.train.init_checkpoint:
            load_initial_weights(network, Path(config.train.init_checkpoint))
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, include_background=False)
        history: list[dict[str, Any]] = []
        best: tuple[float, int] = (-1.0, 0)
        metrics_path = run_dir / "metrics.jsonl"
        metrics_path.write_text("", encoding="utf-8")
        t0, running = time.perf_counter(), []
        bar = tqdm(range(config.train.iterations), desc="train lung_nodules", disable=not progress, mininterval=5)
        for step in bar:
            for group in optimiser.param_groups:
                group["lr"] = _lr(config, step)
            images, labels = sampler.batch(config.train.batch_size)
            optimiser.zero_grad()
            loss = loss_fn(network(torch.from_numpy(images)), torch.from_numpy(labels))
            loss.backward()
            optimiser.step()
            running.append(float(loss.detach()))
            if (step + 1) % config.train.log_every == 0:
                row = {"step": step + 1, "loss": float(np.mean(running)), "lr": _lr(config, step),
                       "seconds": round(time.perf_counter() - t0, 1)}
                running = []
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                with metrics_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
            if (step + 1) % config.train.val_every == 0 or step + 1 == config.train.iterations:
                best = _checkpoint(network, config, run_dir, val, step + 1, best, history, metrics_path)
        return _finish(network, config, run_dir, data_dir, val, best, train_samples, time.perf_counter() - t0)
    finally:
        logging.getLogger("training").removeHandler(handler)
        handler.close()


def _checkpoint(network: Any, config: TrainConfig, run_dir: Path, val: list[ValCase], step: int,
                best: tuple[float, int], history: list[dict[str, Any]], metrics_path: Path) -> tuple[float, int]:
    import torch

    summary, _ = validate(network, val, config) if val else ({"froc": {"1.0": {"sensitivity": 0.0}},
                                                               "dice_net_grid": 0.0}, [])
    row = {"step": step, "validation": summary}
    history.append(row)
    with metrics_path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    state = {"state_dict": network.state_dict(), "config": config.to_dict(), "step": step, "validation": summary}
    torch.save(state, run_dir / "checkpoints" / "last.pt")
    score = _val_score(summary)
    LOGGER.info("step %d: validation dice %.3f, sensitivity@1FP %.3f, fp/scan %.2f", step,
                summary.get("dice_net_grid") or 0.0, summary["froc"]["1.0"]["sensitivity"],
                summary.get("fp_per_scan", float("nan")))
    plot_learning_curves(history, run_dir / "learning_curves.png")
    if score > best[0]:
        torch.save(state, run_dir / "checkpoints" / "best.pt")
        return score, step
    return best


def _finish(network: Any, config: TrainConfig, run_dir: Path, data_dir: Path, val: list[ValCase],
            best: tuple[float, int], train_samples: list[Sample], seconds: float) -> dict[str, Any]:
    import torch

    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    network.load_state_dict(state["state_dict"])
    summary, scans = validate(network, val, config) if val else ({}, [])
    threshold = choose_threshold(scans, config.export.max_fp_per_scan, config.postprocess.prob_threshold) \
        if scans else config.postprocess.min_score
    trained_on = {"dataset": data_dir.name, "cases": [s.name for s in train_samples],
                  "validation_cases": [v.case.name for v in val], "phantom_seeds": dataset_seeds(data_dir),
                  "families": dataset_families(data_dir),  # family -> seeds (issue 28; the card's train family)
                  "iterations": config.train.iterations, "best_step": best[1], "seconds": round(seconds, 1)}
    card = candidate_card(config, trained_on, summary, threshold)
    onnx_path = write_candidate(run_dir, network, config, card)
    result = {"run": run_dir.name, "model": config.export.model_name, "config_sha256": config.config_hash(),
              "best_step": best[1],
              "threshold": threshold, "validation": summary, "onnx": str(onnx_path), "seconds": round(seconds, 1),
              "training_seeds": dataset_seeds(data_dir)}
    (run_dir / "run.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    LOGGER.info("run %s: best step %d, exported %s (threshold %.3f)", run_dir.name, best[1], onnx_path, threshold)
    return result
