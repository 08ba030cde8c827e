"""Features of the sepsis risk model, shared by training (``training.sepsis``) and the plugin.

Each feature is a transform of one input parameter, so a contribution can be reported per
parameter. ``altered_mentation`` is GCS < 15, or ACVPU other than A when GCS is missing.
Works on scalars and on numpy arrays alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from plugins.sepsis.models import SepsisObservation

Kind = Literal["identity", "above", "below"]


@dataclass(frozen=True)
class FeatureSpec:
    """``above``: max(x − at, 0); ``below``: max(at − x, 0); ``identity``: x."""

    name: str
    source: str
    kind: Kind
    at: float = 0.0

    def apply(self, x: Any) -> Any:
        if self.kind == "above":
            return np.maximum(x - self.at, 0.0)
        if self.kind == "below":
            return np.maximum(self.at - x, 0.0)
        return x

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


VITAL_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("respiratory_rate", "respiratory_rate", "identity"),
    FeatureSpec("respiratory_rate_above_20", "respiratory_rate", "above", 20),
    FeatureSpec("heart_rate", "heart_rate", "identity"),
    FeatureSpec("heart_rate_above_90", "heart_rate", "above", 90),
    FeatureSpec("systolic_bp_below_110", "systolic_bp", "below", 110),
    FeatureSpec("temperature_above_38", "temperature_c", "above", 38.0),
    FeatureSpec("temperature_below_36", "temperature_c", "below", 36.0),
    FeatureSpec("spo2_below_96", "spo2", "below", 96),
    FeatureSpec("on_oxygen", "on_oxygen", "identity"),
    FeatureSpec("altered_mentation", "altered_mentation", "identity"),
)
LAB_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("wbc_above_12", "wbc", "above", 12),
    FeatureSpec("wbc_below_4", "wbc", "below", 4),
    FeatureSpec("platelets_below_150", "platelets", "below", 150),
    FeatureSpec("creatinine_above_1_2", "creatinine_mg_dl", "above", 1.2),
    FeatureSpec("bilirubin_above_1_2", "bilirubin_mg_dl", "above", 1.2),
)
#: Variants by preference: the richest one whose parameters are all present is used.
VARIANTS: dict[str, tuple[FeatureSpec, ...]] = {
    "vitals_labs": VITAL_FEATURES + LAB_FEATURES,
    "vitals": VITAL_FEATURES,
}


def altered_mentation(gcs: Any, consciousness: Any) -> Any:
    """1.0 when GCS < 15 (or, without GCS, ACVPU other than A), 0.0 otherwise; arrays allowed
    (NaN GCS and None/'' consciousness = missing; NaN when both are missing)."""
    gcs_a = np.asarray(gcs, dtype=float)
    con = np.asarray(consciousness, dtype=object)
    from_acvpu = np.where(np.isin(con, ["C", "V", "P", "U"]), 1.0, np.where(con == "A", 0.0, np.nan))
    out = np.where(np.isnan(gcs_a), from_acvpu, (gcs_a < 15).astype(float))
    return float(out) if out.ndim == 0 else out


def source_values(obs: SepsisObservation) -> dict[str, float | None]:
    """The model's source parameters of one observation (None when missing)."""
    if obs.gcs is not None:
        mentation: float | None = float(obs.gcs < 15)
    else:
        mentation = None if obs.consciousness is None else float(obs.consciousness != "A")
    values: dict[str, float | None] = {
        "altered_mentation": mentation,
        "on_oxygen": None if obs.on_oxygen is None else float(obs.on_oxygen),
    }
    for name in ("respiratory_rate", "heart_rate", "systolic_bp", "temperature_c", "spo2", "wbc", "platelets",
                 "creatinine_mg_dl", "bilirubin_mg_dl"):
        values[name] = getattr(obs, name)
    return values


def design(columns: dict[str, np.ndarray], specs: tuple[FeatureSpec, ...]) -> np.ndarray:
    """Feature matrix (rows × features) from source columns (NaN = missing)."""
    return np.column_stack([spec.apply(np.asarray(columns[spec.source], dtype=float)) for spec in specs])
