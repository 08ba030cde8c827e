"""A documented synthetic cohort of ward stays with vital-sign and laboratory trajectories and
sepsis onsets. Nothing here is real patient data.

Each patient has a baseline (chronic conditions that shift baselines: COPD → lower SpO2,
beta-blocker → lower heart rate, chronic kidney disease → higher creatinine, liver disease →
higher bilirubin, dementia → altered mentation). Observations come every 1, 2 or 4 h for a stay of
``min_stay_h``–``max_stay_h``. A fraction of patients develop sepsis at an onset time; over a
prodrome of 4–16 h before onset their physiology drifts with a random severity (tachycardia,
tachypnoea, fever or hypothermia, hypotension, desaturation, oxygen need, confusion, leukocytosis
or leukopenia, falling platelets, rising creatinine and bilirubin). Non-septic patients have
confounding episodes (pain, post-operative fever, hypovolaemia, COPD exacerbation) that move the
same signs for a few hours. Measurement noise is added to every value.

Label of an observation: 1 when sepsis onset is within the next ``horizon_h`` hours (0 to 6 h);
observations after onset are dropped (the patient is then known septic).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

COLUMNS = ("patient", "time_h", "label", "respiratory_rate", "spo2", "spo2_scale", "on_oxygen", "systolic_bp",
           "map", "heart_rate", "consciousness", "gcs", "temperature_c", "wbc", "platelets", "creatinine_mg_dl",
           "bilirubin_mg_dl")

# confounder: (hr, rr, temperature, sbp, spo2, wbc factor, creatinine factor, extra oxygen probability)
_CONFOUNDERS = {
    "pain": (18, 4, 0.0, 12, 0, 1.0, 1.0, 0.0),
    "postop_fever": (10, 2, 1.2, -5, 0, 1.3, 1.0, 0.0),
    "hypovolaemia": (22, 3, 0.0, -22, 0, 1.1, 1.3, 0.1),
    "copd_exacerbation": (10, 7, 0.2, 0, -5, 1.1, 1.0, 0.5),
}


@dataclass(frozen=True)
class CohortSpec:
    """Size and shape of the synthetic cohort; ``seed`` makes it reproducible."""

    n_patients: int = 4000
    sepsis_fraction: float = 0.2
    min_stay_h: int = 24
    max_stay_h: int = 96
    horizon_h: float = 6.0
    confounder_fraction: float = 0.35
    seed: int = 20250601

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _times(rng: np.random.Generator, stay: int) -> np.ndarray:
    steps = rng.choice([1, 2, 4], size=stay, p=[0.3, 0.4, 0.3])
    t = np.concatenate([[0], np.cumsum(steps)])
    return t[t <= stay].astype(float)


def _baseline(rng: np.random.Generator) -> dict[str, float]:
    copd, beta, ckd, liver, dementia = (rng.random(5) < [0.10, 0.20, 0.12, 0.05, 0.08])
    return {
        "hr": rng.normal(80, 10) - 12 * beta, "rr": rng.normal(16, 2), "sbp": rng.normal(128, 16),
        "temp": rng.normal(36.8, 0.3), "spo2": rng.normal(91, 2) if copd else rng.normal(97, 1.3),
        "scale": 2.0 if copd and rng.random() < 0.5 else 1.0, "o2": 0.5 if copd else 0.08,
        "alt": 0.6 if dementia else 0.03, "wbc": float(np.exp(rng.normal(np.log(7.5), 0.25))),
        "plt": rng.normal(250, 60), "creat": float(np.exp(rng.normal(np.log(0.9), 0.2))) * (2.2 if ckd else 1.0),
        "bili": float(np.exp(rng.normal(np.log(0.6), 0.3))) * (3.0 if liver else 1.0),
    }


def _drift(rng: np.random.Generator, t: np.ndarray, spec: CohortSpec) -> tuple[np.ndarray, float | None]:
    """Sepsis progression r(t) in [0, 1] scaled by severity (zeros when not septic), onset time."""
    if rng.random() >= spec.sepsis_fraction or t[-1] < 10:
        return np.zeros_like(t), None
    onset = rng.uniform(8, t[-1])
    lead = rng.uniform(4, 16)
    severity = rng.uniform(0.4, 1.4)
    r = np.clip((t - (onset - lead)) / lead, 0, 1) ** 1.5
    return severity * r, onset


def _confounder(rng: np.random.Generator, t: np.ndarray, spec: CohortSpec) -> tuple[np.ndarray, tuple[float, ...]]:
    if rng.random() >= spec.confounder_fraction:
        return np.zeros_like(t), (0.0,) * 8
    kind = list(_CONFOUNDERS)[rng.integers(len(_CONFOUNDERS))]
    centre, width = rng.uniform(0, t[-1]), rng.uniform(3, 10)
    return np.exp(-0.5 * ((t - centre) / width) ** 2), tuple(float(x) for x in _CONFOUNDERS[kind])


def _patient(rng: np.random.Generator, pid: int, spec: CohortSpec) -> dict[str, np.ndarray]:
    t = _times(rng, int(rng.integers(spec.min_stay_h, spec.max_stay_h + 1)))
    n = len(t)
    b = _baseline(rng)
    s, onset = _drift(rng, t, spec)
    g, (c_hr, c_rr, c_t, c_sbp, c_spo2, c_wbc, c_cr, c_o2) = _confounder(rng, t, spec)
    fever = 1.6 if rng.random() < 0.75 else -1.3
    leuko = 0.9 if rng.random() < 0.8 else -0.55
    on_o2 = rng.random(n) < np.clip(b["o2"] + 0.5 * s + c_o2 * g, 0, 0.95)
    sbp = b["sbp"] - 25 * s + c_sbp * g + rng.normal(0, 9, n)
    altered = rng.random(n) < np.clip(b["alt"] + 0.35 * s, 0, 0.95)
    gcs = np.where(altered, rng.choice([14, 13, 12, 10, 8], size=n, p=[0.45, 0.25, 0.15, 0.1, 0.05]), 15)
    cols = {
        "patient": np.full(n, pid), "time_h": t,
        "label": ((onset is not None) & (t >= (onset or 0) - spec.horizon_h) & (t <= (onset or 0))).astype(int),
        "heart_rate": b["hr"] + 28 * s + c_hr * g + rng.normal(0, 6, n),
        "respiratory_rate": np.clip(b["rr"] + 8 * s + c_rr * g + rng.normal(0, 1.8, n), 6, 60),
        "temperature_c": b["temp"] + fever * s + c_t * g + rng.normal(0, 0.25, n),
        "systolic_bp": np.clip(sbp, 50, 250),
        "map": np.clip((sbp + 2 * (0.62 * sbp + rng.normal(0, 5, n))) / 3, 30, 200),
        "spo2": np.clip(b["spo2"] - 4 * s + c_spo2 * g + 2 * on_o2 + rng.normal(0, 1.2, n), 70, 100),
        "spo2_scale": np.full(n, b["scale"]), "on_oxygen": on_o2.astype(float), "gcs": gcs.astype(float),
        "consciousness": np.select([gcs == 15, gcs >= 13, gcs >= 9, gcs >= 6], ["A", "C", "V", "P"], "U"),
        "wbc": b["wbc"] * (1 + leuko * s) * (1 + (c_wbc - 1) * g) * np.exp(rng.normal(0, 0.1, n)),
        "platelets": np.clip(b["plt"] - 100 * s + rng.normal(0, 15, n), 5, None),
        "creatinine_mg_dl": b["creat"] * (1 + 0.9 * s) * (1 + (c_cr - 1) * g) * np.exp(rng.normal(0, 0.08, n)),
        "bilirubin_mg_dl": b["bili"] * (1 + 1.3 * s) * np.exp(rng.normal(0, 0.1, n)),
    }
    keep = t <= onset if onset is not None else np.ones(n, dtype=bool)
    return {k: v[keep] for k, v in cols.items()}


def generate(spec: CohortSpec) -> dict[str, np.ndarray]:
    """The cohort as columns (one row per observation), reproducible from ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    parts = [_patient(rng, pid, spec) for pid in range(spec.n_patients)]
    return {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}


def split_patients(cohort: dict[str, np.ndarray], test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the held-out rows: whole patients, never split across train and test."""
    patients = np.unique(cohort["patient"])
    rng = np.random.default_rng(seed + 1)
    test = rng.choice(patients, size=int(round(test_fraction * len(patients))), replace=False)
    return np.isin(cohort["patient"], test)
