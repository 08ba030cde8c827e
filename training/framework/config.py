"""The run configuration of every task: one TOML file, validated, with a stable hash.

    task = "cardiac_mri"
    seed = 0
    notes = "..."
    [train]                  # TrainSettings: loop, optimizer, schedule, validation, device-side settings
    iterations = 2000
    lr = 1e-3
    [options]                # the task's own Options dataclass (TaskSpec.options)
    patch = [128, 128]

Unknown keys are errors naming the file and the table; lists become tuples. The hash (sha256 of the canonical
JSON of the validated configuration) goes into the model card.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "onecycle")
AMP_MODES = ("auto", "off", "fp16", "bf16")


class RunConfigError(ValueError):
    """A bad run configuration: names the file, the key and the rule."""


@dataclass(frozen=True)
class TrainSettings:
    """The loop's settings (``[train]``).

    *iterations*: optimizer steps; *val_every*: steps between validations (and checkpoints); *patience*:
    validations without improvement of the monitored metric before stopping (0: never stop early);
    *val_fraction*: share of the cases held out for validation (at least one case each side); *schedule*:
    ``constant``, ``cosine`` (to 0 at the last step), ``step`` (x *gamma* every *step_size* steps) or
    ``onecycle``, after *warmup_iterations* of linear warm-up; *amp*: ``auto`` (fp16 with a gradient scaler on
    CUDA, off on the CPU), ``off``, ``fp16`` (CUDA only) or ``bf16``; *workers*: DataLoader worker processes;
    *cache_rate*: share of the deterministic transform outputs kept in memory (MONAI CacheDataset);
    *bootstrap*: resamples for the 95 % intervals; *threads*: torch CPU threads (0: torch's default).
    """

    iterations: int = 1000
    batch_size: int = 4
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_iterations: int = 0
    step_size: int = 1000
    gamma: float = 0.5
    grad_clip: float = 0.0
    val_fraction: float = 0.2
    val_every: int = 100
    patience: int = 0
    amp: str = "auto"
    workers: int = 0
    cache_rate: float = 1.0
    log_every: int = 10
    bootstrap: int = 1000
    threads: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.iterations >= 1, "iterations", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}"),
            (self.amp in AMP_MODES, "amp", f"must be one of {', '.join(AMP_MODES)}"),
            (self.lr > 0, "lr", "must be > 0"),
            (0 < self.val_fraction < 1, "val_fraction", "must be between 0 and 1"),
            (self.val_every >= 1, "val_every", "must be >= 1"),
            (self.patience >= 0, "patience", "must be >= 0"),
            (self.workers >= 0, "workers", "must be >= 0"),
            (0 <= self.cache_rate <= 1, "cache_rate", "must be between 0 and 1"),
            (self.bootstrap >= 0, "bootstrap", "must be >= 0"),
            (self.warmup_iterations >= 0, "warmup_iterations", "must be >= 0"),
            (self.log_every >= 1, "log_every", "must be >= 1"),
        ]
        for ok, key, rule in checks:
            if not ok:
                raise ValueError(f"train.{key} {getattr(self, key)!r} {rule}")


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration: the task name, the seed, the loop's settings and the task's options
    (an instance of ``TaskSpec.options``)."""

    task: str
    seed: int = 0
    notes: str = ""
    train: TrainSettings = TrainSettings()
    options: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as TOML-shaped JSON (the task's options under ``options``)."""
        doc = {"task": self.task, "seed": self.seed, "notes": self.notes, "train": asdict(self.train),
               "options": _options_dict(self.options)}
        return dict(json.loads(json.dumps(doc)))

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def replace_train(self, **changes: Any) -> RunConfig:
        """A copy with ``[train]`` values changed (e.g. ``iterations`` from ``--max-iterations``), validated.

        Raises:
            RunConfigError: a changed value breaks a rule.
        """
        try:
            return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))
        except (TypeError, ValueError) as exc:
            raise RunConfigError(str(exc)) from None

    def to_toml(self) -> str:
        """The configuration as TOML text (what ``RUN/config.toml`` holds; :func:`load_run_config` reads it)."""
        doc = self.to_dict()
        lines = [f"task = {_toml(doc['task'])}", f"seed = {doc['seed']}", f"notes = {_toml(doc['notes'])}", "",
                 "[train]"]
        lines += [f"{k} = {_toml(v)}" for k, v in doc["train"].items()]
        lines += ["", "[options]"] + [f"{k} = {_toml(v)}" for k, v in doc["options"].items()]
        return "\n".join(lines) + "\n"


def _options_dict(options: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return asdict(options)
    return {}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or value == value else "nan"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(cls: type, raw: Any, origin: str, name: str) -> Any:
    if not isinstance(raw, dict):
        raise RunConfigError(f"{origin}: [{name}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RunConfigError(f"{origin}: [{name}] unknown key(s) {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise RunConfigError(f"{origin}: [{name}] {exc}") from None


def config_from_mapping(raw: dict[str, Any], options: type, task: str, origin: str) -> RunConfig:
    """Validate a parsed TOML mapping for *task* whose ``[options]`` table is the dataclass *options*.

    Raises:
        RunConfigError: unknown keys, invalid values or another task's configuration, naming *origin*.
    """
    raw = dict(raw)
    train = _table(TrainSettings, raw.pop("train", {}), origin, "train")
    opts = _table(options, raw.pop("options", {}), origin, "options")
    unknown = sorted(set(raw) - {"task", "seed", "notes"})
    if unknown:
        raise RunConfigError(f"{origin}: unknown top-level key(s) {', '.join(unknown)}")
    if raw.get("task", task) != task:
        raise RunConfigError(f"{origin}: task {raw['task']!r} is not {task!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RunConfigError(f"{origin}: seed {seed!r} must be an integer")
    return RunConfig(task=task, seed=seed, notes=str(raw.get("notes", "")), train=train, options=opts)


def load_run_config(path: Path, options: type, task: str) -> RunConfig:
    """Read and validate the TOML run configuration *path* (see :func:`config_from_mapping`).

    Raises:
        RunConfigError: unreadable file, TOML syntax error, or invalid values.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunConfigError(f"{path}: TOML syntax error: {exc}") from None
    return config_from_mapping(raw, options, task, str(path))
