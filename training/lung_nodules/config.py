"""One configuration file per training run (TOML or JSON), validated, with a stable hash.

The hash (sha256 of the canonical JSON of the validated configuration) goes into the model card,
so a shipped model names exactly the configuration that produced it.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from models.lung_nodules.candidates import CandidateSettings
from models.lung_nodules.network import NetworkConfig

C = TypeVar("C")


class TrainConfigError(ValueError):
    """A bad run configuration: names the file, the key and the rule."""


@dataclass(frozen=True)
class TrainSettings:
    iterations: int = 2000
    batch_size: int = 4
    patch: tuple[int, int, int] = (64, 64, 64)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    positive_fraction: float = 0.6
    confounder_fraction: float = 0.0  # of the negative patches, centred on vessels / airway walls
    surface_negatives: float = 0.0  # of those hard negatives, the share on the lung surface (pleura, apices)
    positives_per_nodule: bool = False  # positive patches: every nodule equally often (else every voxel)
    val_every: int = 250
    val_cases: int = 4
    threads: int = 2
    log_every: int = 25
    init_checkpoint: str = ""  # fine-tune: an earlier run's checkpoint (.pt) or a published model.onnx; "" = scratch


@dataclass(frozen=True)
class ExportSettings:
    model_name: str = "lung_nodules"
    roi: tuple[int, int, int] = (96, 96, 96)
    max_batch_size: int = 4
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    opset: int = 17
    max_fp_per_scan: float = 0.5  # operating point chosen on the validation cases


@dataclass(frozen=True)
class TrainConfig:
    task: str = "lung_nodules"
    seed: int = 0
    network: NetworkConfig = NetworkConfig()
    train: TrainSettings = TrainSettings()
    export: ExportSettings = ExportSettings()
    postprocess: CandidateSettings = CandidateSettings()
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys) of the validated configuration."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _section(cls: type, raw: dict[str, Any], origin: str, name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TrainConfigError(f"{origin}: [{name}] unknown key(s) {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise TrainConfigError(f"{origin}: [{name}] {exc}") from None


def config_from_mapping(raw: dict[str, Any], origin: str = "configuration") -> TrainConfig:
    """Validate a parsed TOML/JSON mapping.

    Raises:
        TrainConfigError: unknown keys or invalid values, naming the section.
    """
    sections = {"network": NetworkConfig, "train": TrainSettings, "export": ExportSettings,
                "postprocess": CandidateSettings}
    config = build_config(TrainConfig, sections, raw, origin)
    _check(config, origin)
    return config


def build_config(cls: type[C], sections: dict[str, type], raw: dict[str, Any], origin: str) -> C:
    """The run configuration *cls* from a parsed mapping: each of *sections* (``[name]`` tables, lists become
    tuples) by its dataclass, the other top-level keys as they are.

    Raises:
        TrainConfigError: unknown keys or values a dataclass refuses, naming *origin* and the section.
    """
    raw = dict(raw)
    parts = {name: _section(part, raw.pop(name, {}), origin, name) for name, part in sections.items()}
    unknown = sorted(set(raw) - ({f.name for f in fields(cls)} - set(sections)))  # type: ignore[arg-type]
    if unknown:
        raise TrainConfigError(f"{origin}: unknown top-level key(s) {', '.join(unknown)}")
    try:
        return cls(**raw, **parts)
    except (TypeError, ValueError) as exc:
        raise TrainConfigError(f"{origin}: {exc}") from None


def _check(config: TrainConfig, origin: str) -> None:
    div = config.network.divisor
    for name, size in (("train.patch", config.train.patch), ("export.roi", config.export.roi)):
        if any(s % div or s <= 0 for s in size):
            raise TrainConfigError(f"{origin}: {name} {list(size)} must be positive multiples of {div}")
    if config.task != "lung_nodules":
        raise TrainConfigError(f"{origin}: task {config.task!r}: this trainer handles 'lung_nodules'")
    if config.train.iterations < 1 or config.train.batch_size < 1:
        raise TrainConfigError(f"{origin}: train.iterations and train.batch_size must be >= 1")


def load_config(path: Path) -> TrainConfig:
    """Read a ``.toml`` or ``.json`` run configuration.

    Raises:
        TrainConfigError: unreadable, bad syntax or invalid values.
    """
    return config_from_mapping(read_mapping(path), str(path))


def read_mapping(path: Path) -> dict[str, Any]:
    """The parsed ``.toml`` or ``.json`` file *path*.

    Raises:
        TrainConfigError: unreadable or bad syntax.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return dict(json.loads(text) if path.suffix == ".json" else tomllib.loads(text))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrainConfigError(f"{path}: syntax error: {exc}") from None
