"""The sepsis risk model: a standardised logistic regression stored as JSON (no pickle, no
scikit-learn at run time), trained by ``training.sepsis`` on a synthetic cohort (see the model
card next to the JSON file). Probability of sepsis onset within ``horizon_hours``.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plugins.errors import KnowledgeBaseError
from plugins.sepsis.features import FeatureSpec, source_values
from plugins.sepsis.models import Contribution, Risk, SepsisObservation

LOGGER = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent / "model" / "sepsis_risk.json"


@dataclass(frozen=True)
class Variant:
    """One fitted logistic model over a feature set."""

    id: str
    specs: tuple[FeatureSpec, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(s.source for s in self.specs))

    def __post_init__(self) -> None:
        for name in ("mean", "scale", "coef"):
            object.__setattr__(self, f"{name}_list", [float(v) for v in getattr(self, name)])

    mean_list: list[float] = field(default_factory=list, init=False, repr=False)
    scale_list: list[float] = field(default_factory=list, init=False, repr=False)
    coef_list: list[float] = field(default_factory=list, init=False, repr=False)


@dataclass(frozen=True)
class RiskModel:
    name: str
    version: str
    horizon_hours: int
    variants: tuple[Variant, ...]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} (logistic regression, synthetic cohort; see MODEL_CARD.md)"

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> RiskModel:
        """Read the model JSON. Raises :class:`KnowledgeBaseError` naming the file and key."""
        try:
            doc = json.loads(path.read_text())
            variants = tuple(_variant(v) for v in doc["variants"])
            return cls(str(doc["name"]), str(doc["version"]), int(doc["horizon_hours"]), variants)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KnowledgeBaseError(f"sepsis risk model {path}: unreadable ({exc!r})") from exc

    def predict(self, obs: SepsisObservation, top: int = 5) -> Risk:
        """Probability from the richest variant whose parameters are all present; "not computed"
        naming the missing parameters otherwise. ``top`` parameters by contribution are listed."""
        values = source_values(obs)
        for variant in self.variants:
            if all(values[s] is not None for s in variant.sources):
                return self._score(variant, values, top)
        smallest = self.variants[-1]
        missing = [s for s in smallest.sources if values[s] is None]
        return Risk(status="not computed", probability=None, horizon_hours=self.horizon_hours, model=self.label,
                    variant=None, top_features=[], missing=missing)

    def _score(self, variant: Variant, values: dict[str, float | None], top: int) -> Risk:
        """Plain-Python arithmetic: for 15 features it is several times faster than numpy."""
        per_source: dict[str, float] = {}
        logit = variant.intercept
        for spec, mean, scale, coef in zip(variant.specs, variant.mean_list, variant.scale_list, variant.coef_list,
                                           strict=True):
            x = float(values[spec.source])  # type: ignore[arg-type]
            feature = max(x - spec.at, 0.0) if spec.kind == "above" else max(spec.at - x, 0.0) \
                if spec.kind == "below" else x
            term = coef * (feature - mean) / scale
            logit += term
            per_source[spec.source] = per_source.get(spec.source, 0.0) + term
        prob = 1.0 / (1.0 + math.exp(-logit))
        ranked = sorted(per_source.items(), key=lambda kv: -kv[1])[:top]
        contributions = [Contribution(parameter=name, value=values[name], log_odds=round(lo, 3))
                         for name, lo in ranked]
        return Risk(status="computed", probability=round(prob, 4), horizon_hours=self.horizon_hours,
                                    model=self.label, variant=variant.id, top_features=contributions, missing=[])


def _variant(doc: dict[str, object]) -> Variant:
    specs = tuple(FeatureSpec(**f) for f in doc["features"])  # type: ignore[arg-type, attr-defined]
    arrays = [np.asarray(doc[k], dtype=float) for k in ("mean", "scale", "coef")]
    if any(a.shape != (len(specs),) for a in arrays) or np.any(arrays[1] <= 0):
        raise ValueError(f"variant {doc.get('id')}: mean/scale/coef must have one positive-scale entry per feature")
    return Variant(str(doc["id"]), specs, arrays[0], arrays[1], arrays[2], float(doc["intercept"]))  # type: ignore[arg-type]
