"""Prepared check for a lent GPU machine: trains each task a few hundred iterations on the CPU and on CUDA with the
framework loop and prints iterations per second (and the share of data loading) for both.

    .venv/bin/python -m scripts.gpu_train_check [--iterations 300] [--cpu-iterations 30]
        [--tasks lung_nodules,cardiac_mri] [--data coronary_ct=DIR:orcascore ...] [--workers 2]

Lung and cardiac train on small synthetic cases built here (a dense ball in air; an LV disc, myocardial ring and
RV crescent), so the check needs no dataset; any task (coronary_ct, mammography too) trains from a dataset folder
given with ``--data TASK=DIR:FORMAT``. The CPU runs fewer iterations (it/s is a rate). Exit status 1 when CUDA is
not available (the CPU figures are printed all the same).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

LOGGER = logging.getLogger("gpu_train_check")


def _heart_cases(n: int, rng: np.random.Generator) -> list[Any]:
    from imaging.volume import Volume
    from training.readers.case import Case, ImageLabels, LabelMap

    cases = []
    yy, xx = np.mgrid[0:128, 0:128].astype(float)
    for k in range(n):
        for phase, radius in (("ED", 14.0), ("ES", 9.0)):
            cy, cx = 64 + rng.normal(0, 4, 2)
            r = np.hypot(yy - cy, xx - cx)
            lv, myo = r < radius, (r >= radius) & (r < radius + 5)
            rv = (np.hypot(yy - cy, xx - (cx - radius - 12)) < radius + 4) & ~lv & ~myo & (xx < cx - radius)
            lab = (1 * lv + 2 * myo + 3 * rv).astype(np.int16)
            img = 80 + 300 * lv + 120 * myo + 260 * rv + rng.normal(0, 15, lab.shape)
            volume = Volume(np.stack([img] * 8).astype(np.float32), np.diag([10.0, 1.5, 1.5, 1.0]))
            labels = LabelMap(np.stack([lab] * 8), {1: "LV blood pool", 2: "LV myocardium", 3: "RV blood pool"})
            cases.append(Case(f"heart{k}_{phase}", volume, labels, image_labels=ImageLabels(phase=phase)))
    return cases


def _lung_cases(n: int, rng: np.random.Generator) -> list[Any]:
    from imaging.volume import Volume
    from training.readers.case import Case, LabelMap

    cases = []
    zz, yy, xx = np.mgrid[0:96, 0:96, 0:96].astype(float)
    for k in range(n):
        c = rng.uniform(20, 76, 3)
        ball = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < rng.uniform(4, 8)
        hu = (-850 + rng.normal(0, 30, ball.shape) + 850 * ball).astype(np.float32)
        cases.append(Case(f"chest{k}", Volume(hu, np.eye(4)), LabelMap(ball.astype(np.int16), {1: "nodule"})))
    return cases


def _cases(task: str, data: dict[str, tuple[Path, str]], rng: np.random.Generator) -> list[Any]:
    if task in data:
        from training.framework.run import load_dataset
        from training.framework.spec import get_task

        folder, fmt = data[task]
        return list(load_dataset(get_task(task), folder, fmt).cases)
    if task == "cardiac_mri":
        return _heart_cases(6, rng)
    if task == "lung_nodules":
        return _lung_cases(6, rng)
    raise SystemExit(f"{task}: give a dataset with --data {task}=DIR:FORMAT")


def _rate(task_name: str, cases: list[Any], device: str, iterations: int, workers: int) -> tuple[float, float]:
    from training.framework.config import load_run_config
    from training.framework.loop import LoopOptions, fit
    from training.framework.spec import get_task

    task = get_task(task_name)
    config = load_run_config(task.default_config, task.options, task.name)
    config = config.replace_train(iterations=iterations, val_every=10 ** 9, workers=workers, bootstrap=0)
    if task_name == "lung_nodules":  # ROI of the sliding window at the end = the volume (96^3)
        config = dataclasses.replace(config, options=dataclasses.replace(config.options, samples_per_case=2))
    with tempfile.TemporaryDirectory(prefix="gpu-train-check-") as tmp:
        result = fit(task, config, cases[:-1], cases[-1:], Path(tmp), LoopOptions(device=device, progress=False))
    return result.iterations_per_second, result.data_share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="iterations on CUDA")
    parser.add_argument("--cpu-iterations", type=int, default=30, help="iterations on the CPU")
    parser.add_argument("--tasks", default="lung_nodules,cardiac_mri")
    parser.add_argument("--data", nargs="*", default=[], metavar="TASK=DIR:FORMAT")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    data = {}
    for item in args.data:
        task, _, rest = item.partition("=")
        folder, _, fmt = rest.rpartition(":")
        data[task] = (Path(folder), fmt)
    cuda = torch.cuda.is_available()
    out = sys.stdout
    out.write(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none'}\n")
    out.write(f"{'task':<14} {'device':<7} {'iterations':>10} {'it/s':>8} {'data share':>11}\n")
    rng = np.random.default_rng(0)
    for task in args.tasks.split(","):
        cases = _cases(task, data, rng)
        rates = {}
        for device, n in (("cpu", args.cpu_iterations), ("cuda", args.iterations)):
            if device == "cuda" and not cuda:
                continue
            rates[device], share = _rate(task, cases, device, n, args.workers)
            out.write(f"{task:<14} {device:<7} {n:>10} {rates[device]:8.2f} {100 * share:10.0f} %\n")
        if len(rates) == 2:
            out.write(f"{task:<14} CUDA / CPU it/s: {rates['cuda'] / rates['cpu']:.1f}\n")
        out.flush()
    return 0 if cuda else 1


if __name__ == "__main__":
    sys.exit(main())
