"""The one training loop: a task's samples through its network and loss, validated on whole cases.

:func:`fit` trains one split (train cases, validation cases) into a folder holding ``checkpoints/`` (``best.pt``,
``last.pt``) and ``tensorboard/`` (scalars: ``train/loss``, ``train/lr``, ``val/<metric>``): optimizer and schedule
from ``[train]``, iterations (not epochs: a small dataset is cycled, each pass reshuffled), mixed precision on
CUDA, validation every ``val_every`` iterations on the validation cases through the EXPORTED head
(:func:`torch_predict`), best checkpoint by the task's monitored metric, early stop after ``patience``
validations without improvement. :mod:`training.framework.run` wraps it into a run (folds, report, export).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.framework.data import endless
from training.framework.device import Precision, autocast, precision, resolve_device
from training.framework.export import exported_module
from training.framework.spec import ExportSpec, Predict, TaskError, TaskSpec
from training.readers.case import Case

if TYPE_CHECKING:
    import torch

    from training.framework.config import RunConfig

LOGGER = logging.getLogger(__name__)

#: Called with the freshly built network before training (loads weights); returns where they came from.
Init = Callable[["torch.nn.Module"], str]


@dataclass(frozen=True)
class LoopOptions:
    """How to run the loop: ``--device``, progress bar, ``--freeze-encoder``, and an initialiser (fine-tuning)."""

    device: str = "auto"
    progress: bool = True
    freeze_encoder: bool = False
    init: Init | None = None


@dataclass
class FitResult:
    """One split's training: the module with the best weights (CPU, eval mode) and what happened."""

    module: Any
    best_iteration: int
    best_value: float | None
    iterations: int
    seconds: float
    data_seconds: float
    device: str
    precision: str
    weights_from: str = "scratch"
    frozen_parameters: int = 0
    validation_seconds: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def iterations_per_second(self) -> float:
        """Training iterations per second of wall time, validations left out."""
        train_seconds = self.seconds - self.validation_seconds
        return self.iterations / train_seconds if train_seconds > 0 else math.nan

    @property
    def data_share(self) -> float:
        """Share of the training wall time (validations left out) spent waiting for batches (loading and
        augmentation)."""
        train_seconds = self.seconds - self.validation_seconds
        return self.data_seconds / train_seconds if train_seconds > 0 else math.nan


def torch_predict(module: torch.nn.Module, spec: ExportSpec, device: torch.device, prec: Precision) -> Predict:
    """*predict* for ``TaskSpec.evaluate`` running *module* through the export head on *device* (autocast as in
    training), batch arrays in and float32 arrays out, keyed by the exported tensor names."""
    import torch

    head = exported_module(module, spec)

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[t.name], dtype=np.float32)).to(device)
                for t in spec.inputs]
        with torch.no_grad(), autocast(device, prec):
            out = head(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {t.name: o.float().cpu().numpy() for t, o in zip(spec.outputs, outs, strict=True)}

    return predict


def _optimizer(params: list[Any], config: RunConfig) -> torch.optim.Optimizer:
    import torch

    t = config.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


def _schedule(optimizer: torch.optim.Optimizer, config: RunConfig) -> Any:
    import torch

    t = config.train
    if t.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=t.iterations)
    warm = t.warmup_iterations

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if t.schedule == "cosine":
            progress = (step - warm) / max(1, t.iterations - warm)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if t.schedule == "step":
            return float(t.gamma ** ((step - warm) // t.step_size))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _freeze(module: torch.nn.Module, task: TaskSpec) -> int:
    frozen = 0
    for name, p in module.named_parameters():
        if task.encoder(name):
            p.requires_grad_(False)
            frozen += p.numel()
    if frozen == 0:
        raise TaskError(f"--freeze-encoder: the {task.name} network has no parameter its task calls encoder")
    return frozen


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on *device*, MONAI MetaTensors as plain tensors (their metadata dispatch on every
    operation of the forward and backward pass costs time and is not needed there)."""
    import torch
    from monai.data import MetaTensor

    return {k: (v.as_tensor() if isinstance(v, MetaTensor) else v).to(device, non_blocking=True)
            if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _loader(task: TaskSpec, cases: Sequence[Case], config: RunConfig, rng: np.random.Generator,
            device: torch.device) -> Iterator[Any]:
    from monai.data import DataLoader

    dataset = task.samples(cases, config, rng)
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise TaskError(f"{task.name}: the training cases give no sample")
    t = config.train
    loader = DataLoader(dataset, batch_size=t.batch_size, shuffle=True, num_workers=t.workers,
                        drop_last=n >= t.batch_size, pin_memory=device.type == "cuda",
                        persistent_workers=t.workers > 0)
    return endless(loader)


@dataclass
class _State:
    best_value: float | None = None
    best_iteration: int = 0
    stale: int = 0
    validations: list[dict[str, Any]] = field(default_factory=list)


def _validate(task: TaskSpec, module: Any, val_cases: Sequence[Case], config: RunConfig, iteration: int,
              ctx: tuple[Any, Precision, Path, Any], state: _State) -> bool:
    """Evaluate on the validation cases; keep the best checkpoint; True when training should stop early."""
    import torch

    device, prec, folder, writer = ctx
    module.eval()
    try:
        records = task.evaluate(torch_predict(module, task.export(config), device, prec), val_cases, config)
    finally:
        module.train()
    summary = task.summarise(records)
    value = summary.get(task.monitor.name, math.nan)
    for key, v in summary.items():
        if not math.isnan(v):
            writer.add_scalar(f"val/{key}", v, iteration)
    state.validations.append({"iteration": iteration, **{k: (None if math.isnan(v) else v) for k, v in summary.items()}})
    LOGGER.info("iteration %d: validation %s %s", iteration, task.monitor.name, f"{value:.4g}")
    if task.monitor.better(value, state.best_value):
        state.best_value, state.best_iteration, state.stale = value, iteration, 0
        torch.save({"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                    "iteration": iteration, task.monitor.name: value}, folder / "checkpoints" / "best.pt")
        return False
    state.stale += 1
    return 0 < config.train.patience <= state.stale


def fit(task: TaskSpec, config: RunConfig, train_cases: Sequence[Case], val_cases: Sequence[Case], folder: Path,
        options: LoopOptions) -> FitResult:
    """Train on *train_cases*, validate on *val_cases*; checkpoints and TensorBoard scalars under *folder*.

    Raises:
        TaskError: bad device or precision, nothing to freeze, no training sample.
    """
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    t = config.train
    device = resolve_device(options.device)
    prec = precision(t.amp, device)
    torch.manual_seed(config.seed)
    if t.threads:
        torch.set_num_threads(t.threads)
    rng = np.random.default_rng(config.seed)
    module = task.network(config)
    weights_from = options.init(module) if options.init is not None else "scratch"
    frozen = _freeze(module, task) if options.freeze_encoder else 0
    module.to(device).train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer, loss_fn = _optimizer(params, config), task.loss(config)
    schedule = _schedule(optimizer, config)
    scaler = torch.amp.GradScaler(device.type, enabled=prec.scaled)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
    batches = _loader(task, train_cases, config, rng, device)
    LOGGER.info("%s: %d training / %d validation cases on %s (%s), weights from %s, %d frozen parameters",
                task.name, len(train_cases), len(val_cases), device, prec.name, weights_from, frozen)
    state, losses, data_seconds, val_seconds, done = _State(), [], 0.0, 0.0, 0
    running: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=t.iterations, disable=not options.progress, desc=task.name, unit="it", dynamic_ncols=True)
    try:
        for iteration in range(1, t.iterations + 1):
            t0 = time.perf_counter()
            batch = _to_device(next(batches), device)
            data_seconds += time.perf_counter() - t0
            with autocast(device, prec):
                loss = loss_fn(module(batch["image"]), batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            done = iteration
            running.append(float(loss.detach()))
            bar.update(1)
            if iteration % t.log_every == 0 or iteration == t.iterations:
                mean = float(np.mean(running))
                running.clear()
                losses.append((iteration, mean))
                writer.add_scalar("train/loss", mean, iteration)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], iteration)
                bar.set_postfix(loss=f"{mean:.4f}")
                LOGGER.debug("iteration %d: loss %.4f", iteration, mean)
            if iteration % t.val_every == 0 or iteration == t.iterations:
                t0 = time.perf_counter()
                stop = _validate(task, module, val_cases, config, iteration, (device, prec, folder, writer), state)
                val_seconds += time.perf_counter() - t0
                if stop:
                    LOGGER.info("early stop at iteration %d: %d validations without a better %s", iteration,
                                t.patience, task.monitor.name)
                    break
    finally:
        bar.close()
        writer.close()
    seconds = time.perf_counter() - start
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}, "iteration": done},
               folder / "checkpoints" / "last.pt")
    best = folder / "checkpoints" / "best.pt"
    module = module.to("cpu")
    if best.is_file():
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    module.eval()
    return FitResult(module, state.best_iteration or done, state.best_value, done, seconds, data_seconds,
                     str(device), prec.name, weights_from, frozen, val_seconds, losses, state.validations)
