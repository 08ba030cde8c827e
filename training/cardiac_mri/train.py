"""Train the cine segmentation U-Net on phantom images generated on the fly (no dataset on disk).

Each step draws phantoms from the training seed range, a phase (half of them at the phantom's
end-diastole or end-systole) and a slice, renders the image and its truth labels, and crops a
``crop`` x ``crop`` window around the heart (jittered; sometimes anywhere). ``families`` names the phantom
families drawn (``A`` :mod:`.phantom`, ``B`` :mod:`.phantom_b`, in equal shares; the default is A alone, as
version 1 was trained); ``augment`` adds the MONAI augmentation of :mod:`.augment`; ``init_version`` starts from the
weights of a published version (fine-tuning). Validation runs every family. Loss: Dice + CE
(MONAI ``DiceCELoss``). A run directory holds ``config.json``, ``checkpoint.pt`` (best
validation), ``history.json``, ``curves.png``, ``metrics.json`` and ``export/`` (the ONNX candidate).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.cardiac_mri.segment import normalise
from models.errors import ModelError
from training.candidate import JsonConfig, TrainResult, torch_predict, write_candidate
from training.cardiac_mri.augment import Augment, sample_b
from training.cardiac_mri.evaluate import CardiacMetrics, evaluate
from training.cardiac_mri.export import SIGNATURE, candidate_card, config_text, export_spec
from training.cardiac_mri.phantom import CineParams, make_params, render
from training.framework.export import load_version_weights

LOGGER = logging.getLogger(__name__)

FAMILIES = ("A", "B")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Hyper-parameters of one run (JSON file; unknown keys are an error)."""

    train_seeds: tuple[int, int] = (0, 4000)  # [start, stop)
    val_seeds: tuple[int, int] = (5000, 5004)
    steps: int = 1500
    val_every: int = 300
    batch_size: int = 12
    crop: int = 96
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    channels: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = 1
    seed: int = 0
    threads: int = 2
    max_minutes: float = 20.0
    init_checkpoint: str = ""  # continue from the weights of an earlier run (fine-tuning); "" = from scratch
    init_version: str = ""  # or from a published version folder of the same widths (e.g. triton_repo/<model>/1)
    families: tuple[str, ...] = ("A",)  # phantom families drawn (A: phantom.py, B: phantom_b.py)
    augment: bool = False  # MONAI augmentation (training/cardiac_mri/augment.py)
    basal_fraction: float = 0.0  # of family-B samples, drawn above the LV base or a step below it (augment.basal_slices)

    def __post_init__(self) -> None:
        if not self.families or set(self.families) - set(FAMILIES):
            raise ValueError(f"families {list(self.families)}: one or more of {', '.join(FAMILIES)}")


def _phase(p: CineParams, rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.25:
        return 0
    if r < 0.5:
        return int(round(p.t_es * p.n_phases))
    return int(rng.integers(p.n_phases))


def _crop(image: np.ndarray, labels: np.ndarray, p: CineParams, size: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape
    if rng.random() < 0.15:
        ci, cj = rng.integers(h), rng.integers(w)
    else:
        ci = h / 2 + p.centre[1] / p.pixel_spacing_mm + rng.normal(0, 8)
        cj = w / 2 + p.centre[0] / p.pixel_spacing_mm + rng.normal(0, 8)
    i0 = int(np.clip(ci - size / 2, 0, h - size))
    j0 = int(np.clip(cj - size / 2, 0, w - size))
    return image[i0:i0 + size, j0:j0 + size], labels[i0:i0 + size, j0:j0 + size]


def _sample_a(cfg: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    p = make_params(int(rng.integers(*cfg.train_seeds)))
    image, labels = render(p, _phase(p, rng), int(rng.integers(p.n_slices)))
    image = normalise(image[None])[0]
    image = image ** rng.uniform(0.8, 1.25)  # contrast variation
    return _crop(image, labels, p, cfg.crop, rng)


def sample_batch(cfg: TrainConfig, rng: np.random.Generator, augment: Augment | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(images (b, 1, crop, crop) normalised float32, labels (b, 1, crop, crop) int64), each drawn from one of
    ``cfg.families``; *augment* (when given) transforms each crop."""
    xs, ys = [], []
    for _ in range(cfg.batch_size):
        family = cfg.families[int(rng.integers(len(cfg.families)))] if len(cfg.families) > 1 else cfg.families[0]
        if family == "A":
            x, y = _sample_a(cfg, rng)
        else:
            x, y = sample_b(int(rng.integers(*cfg.train_seeds)), cfg.crop, rng, cfg.basal_fraction)
        if augment is not None:
            xa, ya = augment(x[None], y[None])
            x, y = xa[0], ya[0]
        xs.append(x)
        ys.append(y)
    return np.stack(xs)[:, None].astype(np.float32), np.stack(ys)[:, None].astype(np.int64)


def _validate(net: Any, cfg: TrainConfig) -> CardiacMetrics | None:
    """The validation seeds of every family in ``cfg.families``, as one set of results."""
    net.eval()
    try:
        return CardiacMetrics(tuple(r for family in cfg.families
                                    for r in evaluate(range(*cfg.val_seeds), torch_predict(net), family).results))
    except ModelError as exc:  # an early network may find no LV at all
        LOGGER.info("cardiac validation not possible yet: %s", exc)
        return None
    finally:
        net.train()


def _score(m: CardiacMetrics | None) -> float:
    if m is None:
        return -1e9
    d = m.as_dict()
    return -(float(d["edv_max_abs_error_pct"]) + float(d["esv_max_abs_error_pct"])
             + float(d["ef_max_abs_error_points"]) + 0.5 * float(d["mass_max_abs_error_pct"]))


def train(cfg: TrainConfig, run_dir: Path) -> TrainResult:
    """Train with on-the-fly phantoms; keep the checkpoint with the best validation errors."""
    import torch
    from monai.losses import DiceCELoss

    from models.cardiac_mri.network import build_network

    t0 = time.monotonic()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json())
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    net = build_network(cfg.channels, cfg.num_res_units)
    if cfg.init_checkpoint:
        net.load_state_dict(load_network(Path(cfg.init_checkpoint)).state_dict())
    elif cfg.init_version:
        LOGGER.info("cardiac: weights from %s", load_version_weights(net, Path(cfg.init_version), export_spec(),
                                                                     run_dir / "init_version.onnx"))
    augment = Augment(cfg.seed, cfg.crop) if cfg.augment else None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=cfg.steps)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    history: list[dict[str, float]] = []
    best: tuple[float, CardiacMetrics | None] = (-1e18, None)
    checkpoint = run_dir / "checkpoint.pt"
    losses: list[float] = []
    deadline = t0 + cfg.max_minutes * 60
    for step in range(1, cfg.steps + 1):
        x, y = sample_batch(cfg, rng, augment)
        loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        last = step == cfg.steps or time.monotonic() > deadline
        if step % cfg.val_every == 0 or last:
            metrics = _validate(net, cfg)
            entry = {"step": step, "loss": float(np.mean(losses[-cfg.val_every:])), "score": _score(metrics)}
            history.append(entry)
            LOGGER.info("cardiac step %d: %s %s", step, entry, metrics.as_dict() if metrics else "-")
            if entry["score"] > best[0]:
                best = (entry["score"], metrics)
                torch.save({"state_dict": net.state_dict(), "config": asdict(cfg), "step": step}, checkpoint)
        if last:
            break
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    _plot(history, losses, run_dir / "curves.png")
    final = best[1].as_dict() if best[1] is not None else {}
    (run_dir / "metrics.json").write_text(json.dumps({"validation": final}, indent=2))
    card = candidate_card(json.loads(cfg.to_json()), cfg.hash, final)
    write_candidate(run_dir, load_network(checkpoint), SIGNATURE, config_text(), card)
    return TrainResult(run_dir, checkpoint, final, time.monotonic() - t0)


def load_network(checkpoint: Path) -> Any:
    """The network of a checkpoint, in eval mode."""
    import torch

    from models.cardiac_mri.network import build_network

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = state["config"]
    net = build_network(tuple(cfg["channels"]), cfg["num_res_units"])
    net.load_state_dict(state["state_dict"])
    return net.eval()


def _plot(history: list[dict[str, float]], losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(np.convolve(losses, np.ones(20) / 20, mode="valid") if len(losses) > 20 else losses)
    ax[0].set_title("training loss (Dice + CE, 20-step mean)")
    ax[1].plot([h["step"] for h in history], [h["score"] for h in history], marker="o")
    ax[1].set_title("validation: -(sum of max abs errors)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
