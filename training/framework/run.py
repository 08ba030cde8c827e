"""A training run of any task, in one folder layout, and the evaluation of a published version.

Run folder (every task)::

    RUN/config.toml          the validated configuration (the --config file with defaults filled in)
    RUN/log.txt              the run's log
    RUN/skipped.json         cases left out, with the reason (reader and task)
    RUN/dataset.json         the dataset's name, format, counts and every source file's SHA-256 (no machine path)
    RUN/metrics.json         validation metrics with bootstrap 95 % intervals, per fold and their mean with --folds,
                             iterations per second, share of data loading, device, operating point
    RUN/curves/              learning_curves.png (and per fold)
    RUN/checkpoints/         best.pt, last.pt (with --folds: RUN/folds/K/checkpoints/)
    RUN/tensorboard/         TensorBoard scalars (tensorboard --logdir RUN)
    RUN/evaluation/          records.json (one record per validation case), the task's plots
    RUN/export/<model>/1/    the candidate: model.onnx, config.pbtxt, state_dict.pt, plots, model card

``aiws export RUN`` publishes the candidate as the next version (:func:`publish_run`); ``aiws evaluate --version N``
runs :func:`evaluate_version` on a hospital's cases and writes the same metrics and plots.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.framework import plots
from training.framework.config import RunConfig, config_from_mapping
from training.framework.data import fold_splits, pick, split_cases
from training.framework.device import precision, resolve_device
from training.framework.export import STATE_DICT_NAME, config_text, load_version_weights, onnx_file, save_state_dict
from training.framework.loop import FitResult, LoopOptions, fit, torch_predict
from training.framework.metrics import Estimate, bootstrap, report
from training.framework.spec import Predict, Record, TaskError, TaskSpec
from training.publish import CARD_JSON, publish_version
from training.readers import read_dataset
from training.readers.case import Case, Skipped

LOGGER = logging.getLogger(__name__)
CANDIDATE_DIR = "export"
RUN_MARKER = "framework_run.json"


@dataclass(frozen=True)
class Dataset:
    """The usable cases of a dataset folder for a task, what was skipped, and how to name it in a card."""

    name: str
    fmt: str
    cases: tuple[Case, ...]
    skipped: tuple[Skipped, ...]

    def summary(self) -> dict[str, Any]:
        """Name, format, counts, one SHA-256 over every source file's hash, and per case the number of its files
        and a SHA-256 over their hashes (no machine path; :meth:`files` lists every file)."""
        files = sorted({(s.name, s.sha256) for c in self.cases for s in c.sources})
        return {"dataset": self.name, "format": self.fmt, "cases": len(self.cases), "skipped": len(self.skipped),
                "files": len(files), "sha256_of_file_hashes": _digest(files),
                "per_case": [{"case_id": c.case_id, "files": len(c.sources),
                              "sha256": _digest(sorted((s.name, s.sha256) for s in c.sources))} for c in self.cases]}

    def files(self) -> list[dict[str, str]]:
        """Every source file: its name relative to the dataset folder and its SHA-256."""
        return [{"name": n, "sha256": h} for n, h in sorted({(s.name, s.sha256) for c in self.cases for s in c.sources})]


def _digest(files: Sequence[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{n} {h}" for n, h in files).encode()).hexdigest()


def load_dataset(task: TaskSpec, data: Path, fmt: str) -> Dataset:
    """Read *data* (layout *fmt*) and keep the cases *task* can learn from.

    Raises:
        TaskError: the task does not take *fmt*, or no case is usable (the message gives the first reasons).
        training.readers.DatasetError: the folder is not in layout *fmt*, or the reader found no usable case.
    """
    task.check_format(fmt)
    result = read_dataset(data, fmt)
    cases, skipped = [], list(result.skipped)
    for case in result.cases:
        reason = task.usable(case)
        if reason is None:
            cases.append(case)
        else:
            skipped.append(Skipped(case.case_id, reason))
    if not cases:
        reasons = "; ".join(f"{s.case_id}: {s.reason}" for s in skipped[:5])
        raise TaskError(f"{data.name}: no case the {task.name} task can learn from ({len(skipped)} skipped: {reasons})")
    return Dataset(data.name, fmt, tuple(cases), tuple(skipped))


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level or logging.INFO, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


@dataclass(frozen=True)
class TrainRequest:
    """What ``aiws train`` asks: the task, its configuration, the dataset, the run folder, the loop options,
    the version to fine-tune from (with its repository) and the number of folds (0: one validation split)."""

    task: TaskSpec
    config: RunConfig
    dataset: Dataset
    run_dir: Path
    options: LoopOptions = LoopOptions()
    from_version: int | None = None
    repository: Path | None = None
    folds: int = 0


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=_json_default), encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _version_init(request: TrainRequest) -> tuple[LoopOptions, str | None]:
    if request.from_version is None:
        return request.options, None
    from models.errors import ModelError
    from models.runtime.repository import ModelRepository

    if request.repository is None:
        raise TaskError("--from-version: no model repository given")
    repo = ModelRepository(request.repository)
    try:
        version = repo.resolve_version(request.task.model, request.from_version or None)
    except ModelError as exc:
        raise TaskError(f"--from-version {request.from_version}: {exc}") from None
    folder = request.repository / request.task.model / str(version)
    spec = request.task.export(request.config)
    scratch = request.run_dir / "checkpoints" / "probe.onnx"

    def init(module: Any) -> str:
        return f"{request.task.model} version {version} ({load_version_weights(module, folder, spec, scratch)})"

    return replace(request.options, init=init), f"{request.task.model} version {version}"


def _fit_split(request: TrainRequest, train_idx: list[int], val_idx: list[int], folder: Path,
               options: LoopOptions) -> tuple[FitResult, list[dict[str, Any]]]:
    cases = request.dataset.cases
    result = fit(request.task, request.config, pick(cases, train_idx), pick(cases, val_idx), folder, options)
    spec = request.task.export(request.config)
    device = resolve_device("cpu")
    records = request.task.evaluate(torch_predict(result.module, spec, device, precision("off", device)),
                                    pick(cases, val_idx), request.config)
    return result, records


def _estimates(task: TaskSpec, records: Sequence[Record], config: RunConfig) -> dict[str, Estimate]:
    return bootstrap(records, task.summarise, resamples=config.train.bootstrap, seed=config.seed)


def train(request: TrainRequest) -> dict[str, Any]:
    """Train, validate (bootstrap intervals), fit the operating point, plot and export a candidate into
    ``RUN/export/``; returns what ``metrics.json`` holds. With folds, each metric is the pooled estimate over every
    case's out-of-fold record with its bootstrap interval, beside the folds' values and their mean; the candidate
    is the best fold's network.

    Raises:
        TaskError: the run folder is not empty, too few cases for the split or the folds, and what :func:`fit`
            raises.
    """
    run_dir, task, config = request.run_dir, request.task, request.config
    if run_dir.exists() and any(run_dir.iterdir()):
        raise TaskError(f"{run_dir.name}: run folder exists and is not empty; choose another --run")
    for sub in ("curves", "checkpoints", "evaluation"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    _write_json(run_dir / "skipped.json", [{"case_id": s.case_id, "reason": s.reason} for s in request.dataset.skipped])
    _write_json(run_dir / "dataset.json", {**request.dataset.summary(), "sources": request.dataset.files()})
    with _run_log(run_dir / "log.txt"):
        options, source = _version_init(request)
        rng = np.random.default_rng(config.seed)
        groups = [task.group(c) for c in request.dataset.cases]
        try:
            splits = (fold_splits(groups, request.folds, rng) if request.folds
                      else [split_cases(groups, config.train.val_fraction, rng)])
        except ValueError as exc:
            raise TaskError(str(exc)) from None
        folds = []
        for k, (train_idx, val_idx) in enumerate(splits):
            folder = run_dir / "folds" / str(k) if request.folds else run_dir
            result, records = _fit_split(request, train_idx, val_idx, folder, options)
            plots.learning_curves(result.losses, result.validations, task.monitor.name,
                                  run_dir / "curves" / (f"learning_curves_fold{k}.png" if request.folds
                                                        else "learning_curves.png"))
            folds.append((result, records, _estimates(task, records, config)))
        doc = _report(request, folds, source)
        best = max(range(len(folds)), key=lambda i: _monitor(task, folds[i][2]))
        result, records, _ = folds[best]
        _write_json(run_dir / "evaluation" / "records.json", records)
        figures = task.plots(records, run_dir / "evaluation")
        if task.fit_operating_point is not None:
            doc["operating_point"] = task.fit_operating_point(records, config)
        _write_json(run_dir / "metrics.json", doc)
        card = _card(request, doc, [*sorted((run_dir / "curves").glob("*.png")), *figures])
        _write_candidate(run_dir, task, config, result.module, card)
        _write_json(run_dir / RUN_MARKER, {"task": task.name, "model": task.model})
        LOGGER.info("%s run %s: %s", task.name, run_dir.name,
                    ", ".join(f"{k} {Estimate(**_est(v)).text()}" for k, v in doc["validation"].items()))
    return doc


def _est(d: dict[str, Any]) -> dict[str, Any]:
    low, high = d["ci95"]
    nan = math.nan
    return {"value": nan if d["value"] is None else d["value"], "low": nan if low is None else low,
            "high": nan if high is None else high, "n_cases": d["n_cases"]}


def _monitor(task: TaskSpec, estimates: dict[str, Estimate]) -> float:
    est = estimates.get(task.monitor.name)
    if est is None or math.isnan(est.value):
        return -math.inf
    return est.value if task.monitor.higher_is_better else -est.value


def _report(request: TrainRequest, folds: list[tuple[FitResult, list[dict[str, Any]], dict[str, Estimate]]],
            source: str | None) -> dict[str, Any]:
    task = request.task
    per_fold: list[dict[str, Any]] = []
    for k, (result, records, estimates) in enumerate(folds):
        per_fold.append({"fold": k, "validation_cases": len(records), "best_iteration": result.best_iteration,
                         "iterations": result.iterations, "seconds": round(result.seconds, 2),
                         "iterations_per_second": round(result.iterations_per_second, 3),
                         "data_loading_share": round(result.data_share, 3), "device": result.device,
                         "precision": result.precision, "weights_from": result.weights_from,
                         "frozen_parameters": result.frozen_parameters, "validation": report(estimates),
                         "validations": result.validations})
    doc: dict[str, Any] = {"task": task.name, "model": task.model, "from_version": source,
                           "dataset": {k: v for k, v in request.dataset.summary().items() if k != "per_case"},
                           "config_sha256": request.config.config_hash()}
    if request.folds:
        pooled = report(_estimates(task, [r for _, records, _ in folds for r in records], request.config))
        doc["folds"] = per_fold
        doc["validation"] = {k: {**est, **_fold_mean([f["validation"].get(k, {}).get("value") for f in per_fold])}
                             for k, est in pooled.items()}
    else:
        doc.update({k: v for k, v in per_fold[0].items() if k != "fold"})
    return doc


def _fold_mean(values: list[float | None]) -> dict[str, Any]:
    """The folds' values and their mean (beside the pooled out-of-fold estimate and its bootstrap interval)."""
    real = [v for v in values if v is not None]
    return {"fold_mean": round(float(np.mean(real)), 6) if real else None, "folds": values}


def _card(request: TrainRequest, doc: dict[str, Any], figures: Sequence[Path]) -> dict[str, Any]:
    task = request.task
    trained_on = request.dataset.summary()
    return {**dict(task.card), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "trained_on": trained_on,
            "metrics": {"validation": doc["validation"], **({"folds": [{"fold": f["fold"], "validation": f["validation"]}
                                                                      for f in doc["folds"]]} if "folds" in doc else {})},
            **({"operating_point": doc["operating_point"]} if "operating_point" in doc else {}),
            "plots": [p.name for p in figures],
            "provenance": {"training_config_sha256": request.config.config_hash(),
                           "training_config": request.config.to_dict(), "fine_tuned_from": doc["from_version"],
                           "framework": "training.framework"},
            "_figures": [str(p) for p in figures]}


def _write_candidate(run_dir: Path, task: TaskSpec, config: RunConfig, module: Any, card: dict[str, Any]) -> Path:
    """Export *module* into ``RUN/export/<model>/1/`` with ``config.pbtxt``, ``state_dict.pt``, plots and card."""
    root = run_dir / CANDIDATE_DIR
    if root.exists():
        shutil.rmtree(root)
    spec = task.export(config)
    tmp = run_dir / "checkpoints" / "model.onnx.tmp"
    onnx_file(module, spec, tmp)
    state = run_dir / "checkpoints" / STATE_DICT_NAME
    save_state_dict(module, state)
    figures = {Path(p).name: Path(p) for p in card.pop("_figures")}
    publish_version(root, spec.model, tmp, config_text(spec), card, version=1,
                    extra_files={STATE_DICT_NAME: state, **figures})
    tmp.unlink()
    return root / spec.model / "1"


def is_framework_run(run_dir: Path) -> bool:
    return (run_dir / RUN_MARKER).is_file()


def publish_run(run_dir: Path, repository: Path) -> tuple[str, int]:
    """Publish the run's candidate as the next version of its model in *repository*; returns (model, version).

    Raises:
        TaskError: the folder is no framework run or has no candidate.
        models.runtime.errors.ModelConfigError: the candidate's configuration differs from the model's.
    """
    if not is_framework_run(run_dir):
        raise TaskError(f"{run_dir.name}: not a run of the training framework (no {RUN_MARKER})")
    model = json.loads((run_dir / RUN_MARKER).read_text(encoding="utf-8"))["model"]
    candidate = run_dir / CANDIDATE_DIR / model / "1"
    if not (candidate / "model.onnx").is_file():
        raise TaskError(f"{run_dir.name}: no exported candidate in {CANDIDATE_DIR}/{model}/1")
    card = json.loads((candidate / CARD_JSON).read_text(encoding="utf-8"))
    for key in ("model", "version"):
        card.pop(key, None)
    extras = {p.name: p for p in candidate.iterdir() if p.suffix in (".png", ".pt")}
    config = (run_dir / CANDIDATE_DIR / model / "config.pbtxt").read_text(encoding="utf-8")
    version = publish_version(repository, model, candidate / "model.onnx", config, card, extra_files=extras)
    return model, version


def version_config(task: TaskSpec, card: dict[str, Any]) -> RunConfig:
    """The configuration a published version was trained with (framework versions), else the task's default."""
    from training.framework.config import load_run_config

    raw = card.get("provenance", {}).get("training_config")
    if isinstance(raw, dict) and card.get("provenance", {}).get("framework") and raw.get("task") == task.name:
        return config_from_mapping(raw, task.options, task.name, f"{task.model} version {card.get('version')}")
    return load_run_config(task.default_config, task.options, task.name)


def evaluate_version(task: TaskSpec, repository: Path, version: int | None, dataset: Dataset, out_dir: Path,
                     resamples: int | None = None) -> dict[str, Any]:
    """Run published *version* of the task's model (ONNX Runtime, as the service runs it) on every case of
    *dataset*; writes ``metrics.json``, ``skipped.json`` and ``evaluation/`` (records, plots) into *out_dir*.

    Raises:
        models.runtime.errors.ModelNotFound: no such version.
    """
    from models.runtime import RuntimeSettings, make_runtime
    from models.runtime.repository import ModelRepository

    repo = ModelRepository(repository)
    resolved = repo.resolve_version(task.model, version or None)
    card = json.loads((repository / task.model / str(resolved) / CARD_JSON).read_text(encoding="utf-8")) \
        if (repository / task.model / str(resolved) / CARD_JSON).is_file() else {}
    config = version_config(task, card)
    spec = task.export(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "skipped.json", [{"case_id": s.case_id, "reason": s.reason} for s in dataset.skipped])
    with _run_log(out_dir / "log.txt"), make_runtime(RuntimeSettings(model_repository=repository,
                                                                     device="cpu")) as runtime:
        def predict(inputs: Any) -> dict[str, np.ndarray]:
            outputs = runtime.infer(task.model, {t.name: np.ascontiguousarray(inputs[t.name], dtype=np.float32)
                                                 for t in spec.inputs}, resolved).outputs
            return {t.name: outputs[t.name] for t in spec.outputs}

        p: Predict = predict
        records = task.evaluate(p, dataset.cases, config)
    estimates = bootstrap(records, task.summarise, resamples=config.train.bootstrap if resamples is None else resamples,
                          seed=config.seed)
    _write_json(out_dir / "evaluation" / "records.json", records)
    figures = task.plots(records, out_dir / "evaluation")
    doc = {"task": task.name, "model": task.model, "version": resolved, "runtime": "onnxruntime",
           "dataset": {k: v for k, v in dataset.summary().items() if k != "per_case"},
           "validation": report(estimates), "plots": [f.name for f in figures]}
    _write_json(out_dir / "metrics.json", doc)
    return doc

