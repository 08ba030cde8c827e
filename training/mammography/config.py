"""One training run of the mammography network is described by one JSON file (see ``configs/``)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from models.mammography.inference import BREAST_RELATIVE, NETWORK_INPUTS
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
    # --- issue 28 (phantom families); left out of the JSON (and the hash) while at their defaults ---
    #: phantom family of the pools: "a" (make_exam), "b" (make_exam_b) or "both" (each half of every batch)
    family: str = "a"
    train_seeds_b: tuple[int, int] = (40_000, 40_080)
    validation_seeds_b: tuple[int, int] = (45_000, 45_004)
    calibration_seeds_b: tuple[int, int] = (50_000, 50_050)
    evaluation_seeds_b: tuple[int, int] = (60_000, 60_100)
    #: share of training exams with lesions on one side only (the side drawn from the seed)
    single_sided_share: float = 0.0
    #: "window" (the VOI window alone, v1) or "breast_relative" (then mapped to the breast's air and fat levels);
    #: written into the model card, where the service reads it per version
    network_input: str = "window"
    #: MONAI array transforms per patch: name -> keyword arguments (training.mammography.augment.TRANSFORMS)
    augment: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: fine-tune from this published version of ``name`` (None: from scratch)
    from_version: int | None = None

    def __post_init__(self) -> None:
        if self.family not in ("a", "b", "both"):
            raise ConfigError(f"family: {self.family!r} is not one of a, b, both")
        if self.network_input not in NETWORK_INPUTS:
            raise ConfigError(f"network_input: {self.network_input!r} is not one of {', '.join(NETWORK_INPUTS)}")
        if not 0.0 <= self.single_sided_share <= 1.0:
            raise ConfigError(f"single_sided_share: {self.single_sided_share!r} is not in [0, 1]")
        if self.from_version is not None and (isinstance(self.from_version, bool) or self.from_version < 1):
            raise ConfigError(f"from_version: {self.from_version!r} is not a positive version number")

    @property
    def families(self) -> tuple[str, ...]:
        return ("a", "b") if self.family == "both" else (self.family,)

    @property
    def relative(self) -> bool:
        return self.network_input == BREAST_RELATIVE

    def seeds(self, stage: str, family: str) -> tuple[int, int]:
        """Seed range [first, last) of *stage* (train, validation, calibration, evaluation) for *family*."""
        return getattr(self, f"{stage}_seeds" if family == "a" else f"{stage}_seeds_b")  # type: ignore[no-any-return]

    def lesion_sides(self, seed: int) -> tuple[str, ...]:
        """Breasts that may carry lesions in the training exam of *seed*: both, or (``single_sided_share`` of the
        seeds, drawn from the seed) one side."""
        rng = np.random.default_rng([seed, 0x51DE])
        if rng.random() >= self.single_sided_share:
            return ("R", "L")
        return (("R", "L")[int(rng.integers(2))],)

    def phantom_for(self, seed: int, lesion_rate: float) -> PhantomConfig:
        """The phantom settings of *seed*: its native spacing cycles through ``native_spacings_mm``."""
        spacings = self.native_spacings_mm or (PhantomConfig().spacing_mm,)
        return PhantomConfig(spacing_mm=spacings[seed % len(spacings)], lesion_rate=lesion_rate)

    def to_json(self) -> str:
        doc = asdict(self)
        for name, default in _ISSUE_28_DEFAULTS.items():
            if doc[name] == default:  # a configuration written before these keys keeps its hash
                del doc[name]
        return json.dumps(doc, indent=2, sort_keys=True)

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON: names the configuration in the model card."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


_ISSUE_28_FIELDS = ("family", "train_seeds_b", "validation_seeds_b", "calibration_seeds_b", "evaluation_seeds_b",
                    "single_sided_share", "network_input", "augment", "from_version")
_ISSUE_28_DEFAULTS = {name: asdict(TrainConfig())[name] for name in _ISSUE_28_FIELDS}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, NetworkConfig):
        if not isinstance(value, dict):
            raise ConfigError(f"network: expected an object, got {value!r}")
        return NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{name}: expected an object, got {value!r}")
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
