"""Train the lesion labeller on phantoms (CPU is enough: ~150 k parameters, patches of 12 k values).

A run directory holds everything needed to inspect and redo the run: ``config.json``,
``checkpoint.pt`` (best validation vessel accuracy), ``history.json``, ``curves.png``,
``metrics.json`` (validation metrics of the best checkpoint) and ``export/`` (the best
checkpoint as an ONNX candidate with its ``config.pbtxt`` and model card).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.candidate import JsonConfig, TrainResult, torch_predict, write_candidate
from training.coronary_ct.dataset import Samples, build_samples
from training.coronary_ct.evaluate import CoronaryMetrics, evaluate_prepared, prepare
from training.coronary_ct.export import SIGNATURE, candidate_card, config_text

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Hyper-parameters of one run (JSON file; unknown keys are an error)."""

    train_seeds: tuple[int, int] = (0, 300)  # [start, stop)
    val_seeds: tuple[int, int] = (5000, 5020)
    bone_per_phantom: int = 40
    class_weight_power: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.1
    seed: int = 0
    threads: int = 2
    max_minutes: float = 20.0
    max_steps: int = 0  # > 0: stop after this many optimiser steps (smoke tests)
    families: tuple[str, ...] = ("A",)  # phantom families trained and validated on, each on the same seed ranges
    augment: float = 0.0  # probability of each MONAI augmentation per patch (0: the light noise of v1 only)
    workers: int = 1  # processes building the phantoms


def _class_weights(y: np.ndarray, power: float) -> np.ndarray:
    """Class weights proportional to count**-power (0: unweighted)."""
    counts = np.bincount(y, minlength=5).astype(np.float64) + 1.0
    w = counts**-power
    return (w / w.mean()).astype(np.float32)


def _selection_key(m: CoronaryMetrics) -> float:
    """Checkpoint selection: Agatston bar and vessel accuracy, minus 0.05 per bone/extra-coronary lesion counted."""
    d = m.as_dict()
    wrong = float(d["bone_lesions_counted"]) + float(d["extra_coronary_lesions_counted"])
    return m.agatston_within_bar_fraction + m.vessel_accuracy - 0.05 * wrong


def augmentation(prob: float, seed: int) -> Any:
    """Random augmentation of a batch of (3, 7, 24, 24) patches, each patch its own draw with probability *prob*
    per kind: intensity scale and shift (+-10 %), Gaussian noise and blur on the two HU channels (not on the lesion
    mask); then a small rotation (+-11 degrees in plane, +-3 degrees out of plane) and zoom (+-12 %: other pixel
    spacings and patient sizes) of all channels together, by MONAI's batched ``AffineTransform``, the mask
    thresholded back to 0/1. Stands in for other kernels, noise levels, kVp and anatomy than the phantoms'.
    (MONAI's per-patch ``RandRotate``/``RandZoom`` cost 65 ms a patch on the shared CPU; batched, ~1 ms.)"""
    import torch
    from monai.networks.layers import AffineTransform
    from scipy.spatial.transform import Rotation

    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    warp = AffineTransform(normalized=True, mode="bilinear", padding_mode="border", align_corners=True)

    def apply(x: Any) -> Any:
        n = x.shape[0]

        def draw(shape: tuple[int, ...]) -> Any:
            return (torch.rand(shape, generator=gen) < prob).float()

        hu = x[:, [0, 2]]
        scale = 1 + draw((n, 2, 1, 1, 1)) * (torch.rand((n, 2, 1, 1, 1), generator=gen) - 0.5) * 0.2
        shift = draw((n, 2, 1, 1, 1)) * (torch.rand((n, 2, 1, 1, 1), generator=gen) - 0.5) * 0.2
        hu = hu * scale + shift
        blur = draw((n, 1, 1, 1, 1))
        kernel = torch.tensor([0.25, 0.5, 0.25])
        smooth = torch.nn.functional.conv2d(hu.reshape(-1, 1, 24, 24), (kernel[:, None] * kernel[None]).view(1, 1, 3, 3),
                                            padding=1).reshape(hu.shape)
        hu = blur * smooth + (1 - blur) * hu
        hu = hu + draw((n, 1, 1, 1, 1)) * torch.randn(hu.shape, generator=gen) * 0.04
        angles = rng.uniform(-1, 1, (n, 3)) * np.array([0.2, 0.05, 0.05]) * (rng.random((n, 1)) < prob)
        zoom = 1 + rng.uniform(-0.12, 0.12, (n, 1)) * (rng.random((n, 1)) < prob)
        theta = np.zeros((n, 4, 4))
        theta[:, :3, :3] = Rotation.from_euler("xyz", angles).as_matrix() / zoom[:, :, None]
        theta[:, 3, 3] = 1.0
        out = warp(torch.cat([hu[:, :1], x[:, 1:2], hu[:, 1:]], dim=1), torch.from_numpy(theta).float())
        return torch.cat([out[:, :1], (out[:, 1:2] > 0.5).float(), out[:, 2:]], dim=1)

    return apply


def _epoch(net: Any, opt: Any, loss_fn: Any, data: Samples, cfg: TrainConfig, rng: np.random.Generator,
           budget: dict[str, float], augment: Any) -> float:
    import torch

    net.train()
    order = rng.permutation(len(data.y))
    losses = []
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        x = torch.from_numpy(data.x[idx].astype(np.float32))
        if cfg.augment > 0:
            x = augment(x)
        else:
            x = x + 0.02 * torch.randn_like(x) * (x[:, 1:2] == 0)  # a little noise, not on the lesion mask
        loss = loss_fn(net(x), torch.from_numpy(data.y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        budget["steps"] += 1
        if (cfg.max_steps and budget["steps"] >= cfg.max_steps) or time.monotonic() > budget["deadline"]:
            break
    return float(np.mean(losses)) if losses else float("nan")


def train(cfg: TrainConfig, run_dir: Path) -> TrainResult:
    """Build samples, train, keep the best checkpoint by validation vessel accuracy.

    Raises:
        ValueError: empty seed ranges.
    """
    import torch

    from models.coronary_ct.network import build_network

    if cfg.train_seeds[1] <= cfg.train_seeds[0] or cfg.val_seeds[1] <= cfg.val_seeds[0]:
        raise ValueError(f"coronary training: empty seed range in {cfg.train_seeds} / {cfg.val_seeds}")
    t0 = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json())
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    data = build_samples(range(*cfg.train_seeds), cfg.bone_per_phantom, cfg.seed, cfg.families, cfg.workers)
    val = [prepare(s, f) for f in cfg.families for s in range(*cfg.val_seeds)]
    augment = augmentation(cfg.augment, cfg.seed)
    LOGGER.info("coronary: %d samples and %d validation phantoms in %.0f s", len(data.y), len(val), time.monotonic() - t0)
    net = build_network(cfg.channels, cfg.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(_class_weights(data.y, cfg.class_weight_power)))
    budget = {"steps": 0.0, "deadline": t0 + cfg.max_minutes * 60}
    history: list[dict[str, float]] = []
    best: tuple[float, CoronaryMetrics | None] = (float("-inf"), None)
    checkpoint = run_dir / "checkpoint.pt"
    for epoch in range(cfg.epochs):
        loss = _epoch(net, opt, loss_fn, data, cfg, rng, budget, augment)
        sched.step()
        net.eval()
        metrics = evaluate_prepared(val, torch_predict(net))
        key = _selection_key(metrics)
        history.append({"epoch": epoch, "loss": loss, "val_vessel_accuracy": metrics.vessel_accuracy,
                        "val_agatston_within_bar": metrics.agatston_within_bar_fraction,
                        "val_bone_counted": metrics.bone_counted})
        LOGGER.info("coronary epoch %d: loss %.4f, %s", epoch, loss, metrics.as_dict())
        if key > best[0]:
            best = (key, metrics)
            torch.save({"state_dict": net.state_dict(), "config": asdict(cfg), "epoch": epoch}, checkpoint)
        if (cfg.max_steps and budget["steps"] >= cfg.max_steps) or time.monotonic() > budget["deadline"]:
            break
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    _plot(history, run_dir / "curves.png")
    final = best[1].as_dict() if best[1] is not None else {}
    (run_dir / "metrics.json").write_text(json.dumps({"validation": final}, indent=2))
    card = candidate_card(json.loads(cfg.to_json()), cfg.hash, final)
    write_candidate(run_dir, load_network(checkpoint), SIGNATURE, config_text(), card)
    return TrainResult(run_dir, checkpoint, final, time.monotonic() - t0)


def load_network(checkpoint: Path) -> Any:
    """The network of a checkpoint, in eval mode."""
    import torch

    from models.coronary_ct.network import build_network

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = state["config"]
    net = build_network(tuple(cfg["channels"]), cfg["dropout"])
    net.load_state_dict(state["state_dict"])
    return net.eval()


def _plot(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    ax[0].plot(epochs, [h["loss"] for h in history])
    ax[0].set_title("training loss")
    ax[1].plot(epochs, [h["val_vessel_accuracy"] for h in history], label="vessel accuracy")
    ax[1].plot(epochs, [h["val_agatston_within_bar"] for h in history], label="Agatston within bar")
    ax[1].set_ylim(0, 1.02)
    ax[1].legend()
    ax[1].set_title("validation (phantoms)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
