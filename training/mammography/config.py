"""One training run of the mammography network is described by one JSON file (see ``configs/``)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from models.mammography.network import NetworkConfig
from training.mammography.phantom import PhantomConfig


class ConfigError(ValueError):
    """A training configuration file is unreadable or has unknown or invalid keys."""


@dataclass(frozen=True)
class TrainConfig:
    name: str = "mammo_detector"
    seed: int = 0
    train_seeds: tuple[int, int] = (10_000, 10_100)  # range [first, last)
    validation_seeds: tuple[int, int] = (15_000, 15_004)
    calibration_seeds: tuple[int, int] = (20_000, 20_100)
    evaluation_seeds: tuple[int, int] = (30_000, 30_100)  # never used in training or calibration
    train_lesion_rate: float = 0.85
    screening_lesion_rate: float = 0.3  # calibration and evaluation populations
    patch: int = 256
    batch: int = 8
    steps: int = 3000
    learning_rate: float = 2e-3
    validate_every: int = 250
    threads: int = 1  # torch threads; 1 is much faster than 2 on a busy 2-core machine
    target_fp_per_image: dict[str, float] = field(
        default_factory=lambda: {"mass": 0.3, "calcification_cluster": 0.2})
    network: NetworkConfig = NetworkConfig()
    #: pixel spacings the phantoms are rendered at (one per seed, cycling); the pipeline's own resampling
    #: brings them to the working spacing, so training and evaluation see what the service sees
    native_spacings_mm: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25)

    def phantom_for(self, seed: int, lesion_rate: float) -> PhantomConfig:
        """The phantom settings of *seed*: its native spacing cycles through ``native_spacings_mm``."""
        spacings = self.native_spacings_mm or (PhantomConfig().spacing_mm,)
        return PhantomConfig(spacing_mm=spacings[seed % len(spacings)], lesion_rate=lesion_rate)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON: names the configuration in the model card."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, NetworkConfig):
        if not isinstance(value, dict):
            raise ConfigError(f"network: expected an object, got {value!r}")
        return NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    return value


def load_config(path: Path | None) -> TrainConfig:
    """Read a JSON training configuration; keys not given keep their defaults.

    Raises:
        ConfigError: unreadable JSON, unknown keys, or values of the wrong type.
    """
    if path is None:
        return TrainConfig()
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"training config {path}: {exc}") from exc
    defaults = TrainConfig()
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"training config {path}: unknown keys {unknown} (known: {sorted(known)})")
    try:
        return TrainConfig(**{k: _coerce(k, v, getattr(defaults, k)) for k, v in raw.items()})
    except TypeError as exc:
        raise ConfigError(f"training config {path}: {exc}") from exc
