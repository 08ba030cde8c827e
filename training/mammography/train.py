"""Training loop of the mammography network (MONAI U-Net, BCE + Dice, patches from phantoms).

A run directory holds everything a run produced: ``config.json``, ``checkpoint.pt``, ``train.log``,
``history.json`` and ``curves.png``. Calibration and evaluation (:mod:`training.mammography.evaluate`)
add ``calibration.json`` and ``metrics.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.mammography.augment import PatchAugment
from training.mammography.config import TrainConfig
from training.mammography.dataset import FamilySampler, PatchSampler, PoolImage, PoolSpec, build_pool
from training.mammography.phantom import PhantomConfig

LOGGER = logging.getLogger(__name__)

#: The project's model repository (where ``from_version`` is looked up unless told otherwise).
REPOSITORY = Path(__file__).resolve().parents[2] / "triton_repo"

CHECKPOINT = "checkpoint.pt"


def _seeds(span: tuple[int, int]) -> range:
    return range(span[0], span[1])


def _loss_fn():
    import torch
    from monai.losses import DiceLoss

    dice = DiceLoss(sigmoid=True, batch=True)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 3.0, 3.0]).view(1, 3, 1, 1))

    def loss(logits, target):
        return bce(logits, target) + dice(logits, target)

    return loss


def _dice_per_channel(logits: Any, target: Any) -> list[float]:
    pred = (logits > 0).float()
    inter = (pred * target).sum(dim=(0, 2, 3))
    total = pred.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return [float(v) for v in (2 * inter / total.clamp(min=1.0))]


def _write_curves(history: dict[str, list[Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(history["step"], history["train_loss"], label="train (mean over interval)")
    ax1.plot(history["step"], history["val_loss"], label="validation")
    ax1.set_xlabel("step")
    ax1.set_ylabel("BCE + Dice")
    ax1.legend()
    for k, name in enumerate(("dense", "mass", "calcification cluster")):
        ax2.plot(history["step"], [d[k] for d in history["val_dice"]], label=name)
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation Dice")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def cached_pool(seeds: range, phantom_for: Callable[[int], PhantomConfig], cache_dir: Path | None,
                spec: PoolSpec = PoolSpec()) -> list[PoolImage]:
    """:func:`build_pool`, kept in *cache_dir* (a pickle named by the seeds, phantom settings and *spec*) when given."""
    if cache_dir is None:
        return build_pool(seeds, phantom_for, spec)
    names = [asdict(phantom_for(s)) if not spec.key(s) else (spec.key(s), asdict(phantom_for(s))) for s in seeds]
    key = hashlib.sha256(repr(names).encode()).hexdigest()[:16]
    path = cache_dir / f"mammo-pool-{key}.pkl"
    if path.is_file():
        with open(path, "rb") as fh:
            return list(pickle.load(fh))
    pool = build_pool(seeds, phantom_for, spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(pool, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return pool


def _samplers(config: TrainConfig, cache_dir: Path | None) -> tuple[FamilySampler, list[PoolImage]]:
    """The training sampler (one pool per family, equal shares) and the validation views of every family."""
    def phantom_for(seed: int) -> PhantomConfig:
        return config.phantom_for(seed, config.train_lesion_rate)

    train_pools, val_pool = [], []
    for family in config.families:
        sides = config.lesion_sides if config.single_sided_share > 0 else None
        train_pools.append(cached_pool(_seeds(config.seeds("train", family)), phantom_for, cache_dir,
                                       PoolSpec(family, config.relative, sides)))
        val_pool += cached_pool(_seeds(config.seeds("validation", family)), phantom_for, cache_dir,
                                PoolSpec(family, config.relative))
    samplers = [PatchSampler(pool, config.patch, config.seed + 7919 * k) for k, pool in enumerate(train_pools)]
    LOGGER.info("phantom pools: %s training views (families %s), %d validation views",
                "+".join(str(len(p)) for p in train_pools), "+".join(config.families), len(val_pool))
    return FamilySampler(samplers), val_pool


def _start_weights(model: Any, config: TrainConfig, repository: Path, sampler: FamilySampler, run_dir: Path) -> str:
    """Load ``from_version`` of the model into *model* (fine-tuning); returns where the weights came from."""
    from training.mammography.export import export_spec
    from training.mammography.warmstart import load_version

    samples = [sampler.sample(8)[0] for _ in range(8)]
    source = load_version(model, repository / config.name / str(config.from_version), export_spec(config.name),
                          run_dir / "probe.onnx", samples)
    LOGGER.info("fine-tuning from %s version %s: %s", config.name, config.from_version, source)
    return f"{config.name} version {config.from_version}"


def train(config: TrainConfig, run_dir: Path, progress: bool = True, cache_dir: Path | None = None,
          repository: Path = REPOSITORY) -> Path:
    """Train into *run_dir* (from scratch, or from ``from_version`` in *repository*); returns the checkpoint path.
    *cache_dir*: where phantom pools are kept."""
    import torch
    from tqdm import tqdm

    from models.mammography.network import build_network

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.to_json())
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    t0 = time.perf_counter()
    sampler, val_pool = _samplers(config, cache_dir)
    LOGGER.info("phantom pools ready (%.0f s)", time.perf_counter() - t0)
    val_x, val_y = (torch.from_numpy(a) for a in PatchSampler(val_pool, config.patch, config.seed + 1).sample(
        max(8, 4 * config.batch)))
    augment = PatchAugment(config.augment, config.seed + 3) if config.augment else None
    model = build_network(config.network)
    started_from = _start_weights(model, config, repository, sampler, run_dir) if config.from_version else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=config.steps,
                                                   pct_start=0.1)
    loss_fn = _loss_fn()
    history: dict[str, list[Any]] = {"step": [], "train_loss": [], "val_loss": [], "val_dice": [], "seconds": []}
    running: list[float] = []
    bar = tqdm(range(1, config.steps + 1), disable=not progress, desc="mammo train", unit="step")
    for step in bar:
        model.train()
        xs, ys = sampler.sample(config.batch)
        if augment is not None:
            xs, ys = augment(xs, ys)
        x, y = torch.from_numpy(xs), torch.from_numpy(ys)
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if step % config.validate_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                logits = torch.cat([model(val_x[i:i + config.batch]) for i in range(0, len(val_x), config.batch)])
                val_loss = float(loss_fn(logits, val_y))
            history["step"].append(step)
            history["train_loss"].append(float(np.mean(running)))
            history["val_loss"].append(val_loss)
            history["val_dice"].append(_dice_per_channel(logits, val_y))
            history["seconds"].append(time.perf_counter() - t0)
            running = []
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{val_loss:.3f}")
            LOGGER.info("step %d: train %.4f val %.4f dice %s", step, history["train_loss"][-1], val_loss,
                        [round(d, 3) for d in history["val_dice"][-1]])
    checkpoint = run_dir / CHECKPOINT
    torch.save({"state_dict": model.state_dict(), "network": asdict(config.network), "config": json.loads(
        config.to_json()), "started_from": started_from}, checkpoint)
    (run_dir / "history.json").write_text(json.dumps(history))
    _write_curves(history, run_dir / "curves.png")
    LOGGER.info("training done in %.0f s: %s", time.perf_counter() - t0, checkpoint)
    return checkpoint


def load_model(run_dir: Path):
    """The trained network of *run_dir* in eval mode (torch)."""
    import torch

    from models.mammography.network import NetworkConfig, build_network

    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    net_cfg = NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["network"].items()})
    model = build_network(net_cfg)
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model
