"""``aiws train|evaluate|export`` through the training framework (training.framework), for every task in its
registry (lung_nodules, cardiac_mri, coronary_ct, mammography):

    aiws train TASK --data DIR --format FORMAT [--config FILE] [--run NAME] [--max-iterations N]
                    [--device auto|cpu|cuda[:N]] [--from-version N] [--freeze-encoder] [--folds K]
    aiws evaluate --version N --task TASK --data DIR --format FORMAT [--out DIR]   # a published version
    aiws evaluate RUN --data DIR --format FORMAT                                    # a framework run's candidate
    aiws export RUN                                                                 # publish its candidate

``aiws train`` with ``--format`` takes this path; without it the earlier loops run unchanged (the lung phantom
reproduction, ``make train-lung``, and the phantom tasks). :mod:`aiws.cli_train` registers the arguments and calls
in here.
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from aiws.config import Config
from aiws.errors import ConfigError, NotFound
from aiws.logsetup import CONSOLE

#: Tasks of the framework registry (training.framework.spec.TASKS), kept here so the parser imports no torch.
FRAMEWORK_TASKS = ("lung_nodules", "cardiac_mri", "coronary_ct", "mammography")
#: Options that only the framework path takes.
FRAMEWORK_ONLY = ("max_iterations", "device", "from_version", "freeze_encoder", "folds")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-iterations", type=int, default=None, metavar="N",
                   help="stop after N iterations (overrides [train] iterations; with --format)")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda[:N]",
                   help="where to train (default auto: CUDA when torch sees one, else the CPU; with --format)")
    p.add_argument("--from-version", type=int, default=None, metavar="N",
                   help="fine-tune: start from the weights of published version N of the task's model (0: latest)")
    p.add_argument("--freeze-encoder", action="store_true", help="with --from-version: train the decoder only")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="K-fold cross-validation: per-fold metrics and their mean (with --format)")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", type=int, default=None, metavar="N",
                   help="evaluate published version N (0: latest) of --task's model on --data/--format")
    p.add_argument("--task", choices=FRAMEWORK_TASKS, default=None, help="with --version: the task")
    p.add_argument("--out", type=Path, default=None,
                   help="with --version: report folder (default runs/evaluate-MODEL-vN-DATE)")
    p.add_argument("--repository", type=Path, default=None,
                   help="with --version: model repository (default: [runtime] model_repository)")


def wants_train(args: argparse.Namespace) -> bool:
    """True when ``aiws train`` goes through the framework (a --format is given for a framework task).

    Raises:
        ConfigError: a framework-only option without --format.
    """
    if args.format is not None:
        return args.task in FRAMEWORK_TASKS  # lung_nodule_classifier keeps its own MSD loop
    used = [name for name in FRAMEWORK_ONLY if getattr(args, name) not in (None, False, 0)]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')}: needs --data DIR --format FORMAT (the training framework)")
    return False


def _task(name: str) -> Any:
    from training.framework.spec import TaskError, get_task

    try:
        return get_task(name)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None


def _dataset(task: Any, data: Path | None, fmt: str) -> Any:
    from training.framework.run import load_dataset
    from training.framework.spec import TaskError
    from training.readers import DatasetError

    if data is None:
        raise ConfigError(f"--format {fmt}: --data DIR is required")
    try:
        return load_dataset(task, data, fmt)
    except (TaskError, DatasetError) as exc:
        raise ConfigError(str(exc)) from None


def _run_config(task: Any, args: argparse.Namespace) -> Any:
    from training.framework.config import RunConfigError, load_run_config

    try:
        config = load_run_config(args.config_file or task.default_config, task.options, task.name)
        if args.max_iterations is not None:
            config = config.replace_train(iterations=args.max_iterations,
                                          val_every=min(config.train.val_every, max(1, args.max_iterations)))
    except RunConfigError as exc:
        raise ConfigError(str(exc)) from None
    return config


def train(args: argparse.Namespace, config: Config) -> int:
    """``aiws train TASK --data DIR --format FORMAT ...`` on the framework."""
    from training.framework.loop import LoopOptions
    from training.framework.metrics import Estimate
    from training.framework.run import TrainRequest
    from training.framework.run import train as train_run
    from training.framework.spec import TaskError

    if args.task not in FRAMEWORK_TASKS:
        raise ConfigError(f"train {args.task} --format: the training framework trains {', '.join(FRAMEWORK_TASKS)}")
    if args.freeze_encoder and args.from_version is None:
        raise ConfigError("--freeze-encoder: needs --from-version N (a fresh encoder is not worth freezing)")
    task = _task(args.task)
    try:
        task.check_format(args.format)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None
    run_config = _run_config(task, args)
    dataset = _dataset(task, args.data, args.format)
    run_dir = Path(args.runs_dir) / (args.run or f"{args.task}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    request = TrainRequest(task, run_config, dataset, run_dir,
                           LoopOptions(device=args.device or "auto", progress=not args.no_progress,
                                       freeze_encoder=args.freeze_encoder),
                           from_version=args.from_version, repository=args.repository or config.runtime.model_repository,
                           folds=args.folds)
    try:
        doc = train_run(request)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None
    CONSOLE.info(f"run {run_dir}: {len(dataset.cases)} case(s), {len(dataset.skipped)} skipped (skipped.json); "
                 f"{doc.get('iterations_per_second', '-')} it/s on {doc.get('device', '-')}")
    for line in _metric_lines(doc["validation"], Estimate):
        CONSOLE.info(line)
    CONSOLE.info(f"candidate: {run_dir / 'export'}; next: aiws evaluate {run_dir} --data DIR --format FORMAT; "
                 f"aiws export {run_dir}")
    return 0


def _metric_lines(validation: dict[str, Any], estimate: Any) -> list[str]:
    lines = []
    for name, est in validation.items():
        low, high = est["ci95"]
        nan = float("nan")
        value = estimate(nan if est["value"] is None else est["value"], nan if low is None else low,
                         nan if high is None else high, est["n_cases"])
        extra = f"; folds {est['folds']}, mean {est['fold_mean']}" if "folds" in est else ""
        lines.append(f"  {name}: {value.text()}{extra}")
    return lines


def evaluate(args: argparse.Namespace, config: Config) -> int:
    """``aiws evaluate --version N --task TASK --data --format`` or ``aiws evaluate RUN --data --format`` (a
    framework run): the report written to a folder and printed, each metric with its 95 % interval."""
    from models.errors import ModelError
    from training.framework.metrics import Estimate
    from training.framework.run import CANDIDATE_DIR, evaluate_version, is_framework_run

    if args.format is None:
        raise ConfigError("evaluate: --format FORMAT is required with --version or a framework run")
    if args.version is not None:
        if args.task is None:
            raise ConfigError("evaluate --version: --task TASK is required")
        task, repo, version = _task(args.task), args.repository or config.runtime.model_repository, args.version
        out = args.out or Path("runs") / f"evaluate-{task.model}-v{version}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    else:
        if args.run is None or not is_framework_run(args.run):
            raise NotFound(f"{args.run}: not a run of the training framework")
        import json

        task = _task(json.loads((args.run / "framework_run.json").read_text(encoding="utf-8"))["task"])
        repo, version = args.run / CANDIDATE_DIR, 1
        out = args.out or args.run / f"evaluation-{args.data.name if args.data else 'data'}"
    dataset = _dataset(task, args.data, args.format)
    try:
        doc = evaluate_version(task, repo, version, dataset, out)
    except ModelError as exc:
        raise NotFound(str(exc)) from None
    CONSOLE.info(f"{task.model} version {doc['version']} on {dataset.name} ({args.format}): {len(dataset.cases)} "
                 f"case(s), {len(dataset.skipped)} skipped; report in {out}")
    for line in _metric_lines(doc["validation"], Estimate):
        CONSOLE.info(line)
    return 0


def is_run(run: Path | None) -> bool:
    from training.framework.run import is_framework_run

    return run is not None and is_framework_run(run)


def export(args: argparse.Namespace, config: Config) -> int:
    """``aiws export RUN`` of a framework run: its candidate becomes the next version."""
    from models.runtime.errors import ModelConfigError
    from training.framework.run import publish_run
    from training.framework.spec import TaskError

    repo = args.repository or config.runtime.model_repository
    try:
        model, version = publish_run(args.run, repo)
    except TaskError as exc:
        raise NotFound(str(exc)) from None
    except ModelConfigError as exc:
        raise ConfigError(str(exc)) from None
    CONSOLE.info(f"published {model} version {version} in {repo}; the service uses it from its next job")
    return 0
