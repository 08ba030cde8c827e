"""Training benchmark on this CPU: per task, iterations per second, share of time in data loading, peak memory.

Baseline = the task's earlier loop where it still exists (``training/lung_nodules/train.py`` on MSD phantoms,
``training/cardiac_mri/train.py`` rendering phantoms per step); ours = the framework loop
(:mod:`training.framework.loop`) on the same data (lung: the same MSD phantom folder read by the ``msd`` reader;
cardiac: the same phantom generator's ED/ES frames as cases), same batch, patch and network.

Iterations per second over 2N iterations: ours from the loop's own clock (training time less validations); the
lung baseline from the ``seconds`` it logs at its last step (before its final validation); the cardiac baseline
as its wall time less its final validation, export and plot (timed around those functions). Data-loading share:
ours from the loop's own timer (time waiting for the next batch / training time); the cardiac baseline from timing
its ``sample_batch`` alone (as many batches); the lung baseline samples inside its loop (n/a). Peak memory: ``ru_maxrss`` of a fresh
process per measurement (each run is a child process). Tasks whose TaskSpec is not available yet are skipped.

Run: ``.venv/bin/python bench/train.py [--iterations N] [--tasks lung_nodules,cardiac_mri,...]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUNG_TOML = """
seed = 3
[network]
channels = [8, 16, 32, 64]
strides = [2, 2, 2]
[train]
iterations = {iterations}
batch_size = 2
patch = [32, 32, 32]
val_every = 100000
val_cases = 1
log_every = 5
threads = 2
[export]
model_name = "lung_nodules"
roi = [32, 32, 32]
max_batch_size = 2
spacing_mm = [2.0, 2.0, 2.0]
"""


def _lung_data(root: Path) -> Path:
    from training.lung_nodules.dataset import write_phantom_dataset
    from training.lung_nodules.phantom import PhantomConfig

    data = root / "lung"
    if not data.is_dir():
        tiny = PhantomConfig(max_matrix=110, z_extent_mm=40.0, nodules=(1, 2), diameter_mm=(8.0, 14.0))
        write_phantom_dataset(data, [1, 2, 3], tiny)
    return data


def _lung_baseline(root: Path, iterations: int) -> dict[str, Any]:
    import tomllib

    from training.lung_nodules.config import config_from_mapping
    from training.lung_nodules.train import train

    config = config_from_mapping(tomllib.loads(LUNG_TOML.format(iterations=iterations)))
    data = _lung_data(root)
    t0 = time.perf_counter()
    train(config, data, root / f"old-{iterations}", progress=False)
    rows = [json.loads(line) for line in (root / f"old-{iterations}" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "seconds" in r][-1]  # logged at the last step, before the final validation
    return {"wall": time.perf_counter() - t0, "train_seconds": last["seconds"] * iterations / last["step"]}


def _cardiac_cases(n: int) -> list[Any]:
    from imaging.volume import Volume
    from training.cardiac_mri.phantom import make_params, render
    from training.readers.case import Case, ImageLabels, LabelMap

    cases = []
    for seed in range(n):
        p = make_params(seed)
        for phase, name in ((0, "ED"), (int(round(p.t_es * p.n_phases)), "ES")):
            slices = [render(p, phase, k) for k in range(p.n_slices)]
            affine = np.diag([p.thickness_mm + p.gap_mm, p.pixel_spacing_mm, p.pixel_spacing_mm, 1.0])
            volume = Volume(np.stack([s[0] for s in slices]).astype(np.float32), affine)
            labels = LabelMap(np.stack([s[1] for s in slices]).astype(np.int16),
                              {1: "LV blood pool", 2: "LV myocardium", 3: "RV blood pool"})
            cases.append(Case(f"phantom{seed}_{name}", volume, labels, image_labels=ImageLabels(phase=name)))
    return cases


def _cardiac_baseline(root: Path, iterations: int) -> dict[str, Any]:
    from training.cardiac_mri import train as old

    cfg = old.TrainConfig(steps=iterations, val_every=100000, batch_size=12, crop=96, threads=2, max_minutes=60,
                          channels=(8, 16, 32, 64))  # the shipped version 1, as ours
    spent = {"outside": 0.0}

    def timed(fn: Any) -> Any:  # the final validation and the export are not training iterations
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent["outside"] += time.perf_counter() - t
        return wrapper

    old._validate, old.write_candidate, old._plot = timed(old._validate), timed(old.write_candidate), timed(old._plot)
    t0 = time.perf_counter()
    old.train(cfg, root / f"old-{iterations}")
    wall = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    t1 = time.perf_counter()
    for _ in range(iterations):
        old.sample_batch(cfg, rng)
    return {"wall": wall, "train_seconds": wall - spent["outside"], "data_seconds": time.perf_counter() - t1}


def _ours(task_name: str, root: Path, iterations: int) -> dict[str, Any]:
    from training.framework.config import load_run_config
    from training.framework.loop import LoopOptions, fit
    from training.framework.spec import get_task

    task = get_task(task_name)
    config = load_run_config(task.default_config, task.options, task.name)
    config = config.replace_train(iterations=iterations, val_every=100000, log_every=5, threads=2, bootstrap=0)
    if task_name == "lung_nodules":
        from training.readers import read_dataset

        cases = list(read_dataset(_lung_data(root), "msd").cases)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=2), options=dataclasses.replace(
            config.options, patch=(32, 32, 32), roi=(32, 32, 32), samples_per_case=1, spacing_mm=(2.0, 2.0, 2.0),
            max_batch_size=2))
    elif task_name == "cardiac_mri":
        cases = _cardiac_cases(3)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=6),
                                     options=dataclasses.replace(config.options, patch=(96, 96), crops_per_slice=2))
    else:
        raise SystemExit(f"{task_name}: no benchmark data here yet")
    t0 = time.perf_counter()
    result = fit(task, config, cases[:-1], cases[-1:], root / f"ours-{iterations}", LoopOptions(progress=False))
    return {"wall": time.perf_counter() - t0, "data_seconds": result.data_seconds,
            "train_seconds": result.seconds - result.validation_seconds}  # the loop's own clock


def child(variant: str, task: str, iterations: int, root: Path) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    logging.basicConfig(level=logging.WARNING)
    if variant == "ours":
        out = _ours(task, root, iterations)
    elif task == "lung_nodules":
        out = _lung_baseline(root, iterations)
    else:
        out = _cardiac_baseline(root, iterations)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def _measure(variant: str, task: str, iterations: int, root: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", variant, task, str(iterations), str(root)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} {task} {iterations}: failed\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _figures(variant: str, task: str, n: int, root: Path) -> dict[str, Any]:
    """Iterations per second and data share of 2N iterations (see the module docstring), peak memory."""
    two = _measure(variant, task, 2 * n, root)
    rate = 2 * n / two["train_seconds"]
    share = None
    if "data_seconds" in two:
        share = two["data_seconds"] / two["train_seconds"]
    return {"it_per_s": rate, "data_share": share, "peak_rss_mb": two["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10, help="N (each loop runs N and 2N iterations)")
    parser.add_argument("--tasks", default="lung_nodules,cardiac_mri")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "TASK", "N", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), Path(args.child[3]))
        return
    with tempfile.TemporaryDirectory(prefix="aiws-bench-train-") as tmp:
        root = Path(tmp)
        print(f"{'task':<14} {'loop':<9} {'it/s':>7} {'data share':>11} {'peak RSS MB':>12}")
        for task in args.tasks.split(","):
            base = _figures("baseline", task, args.iterations, root)
            ours = _figures("ours", task, args.iterations, root)
            for name, f in (("baseline", base), ("ours", ours)):
                share = "n/a" if f["data_share"] is None else f"{100 * f['data_share']:.0f} %"
                print(f"{task:<14} {name:<9} {f['it_per_s']:7.2f} {share:>11} {f['peak_rss_mb']:12.0f}")
            print(f"{task:<14} ratio ours/baseline it/s {ours['it_per_s'] / base['it_per_s']:.2f}, "
                  f"peak memory {ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
