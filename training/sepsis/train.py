"""Train the sepsis risk model (standardised logistic regression per feature variant), evaluate it
on a held-out split of whole patients (AUROC, AUPRC, Brier, calibration), and write the JSON model
and its model card into ``plugins/sepsis/model/``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from plugins.sepsis.features import VARIANTS, FeatureSpec, altered_mentation, design
from plugins.sepsis.models import SepsisObservation
from plugins.sepsis.scores import at_chart_precision, news2, qsofa
from training.sepsis.card import write_card
from training.sepsis.cohort import CohortSpec, generate, split_patients

LOGGER = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "plugins" / "sepsis" / "model"


@dataclass(frozen=True)
class TrainConfig:
    cohort: CohortSpec = field(default_factory=CohortSpec)
    test_fraction: float = 0.3
    out_dir: Path = DEFAULT_OUT
    version: str = "1.0.0"
    inverse_regularization: float = 1.0  # scikit-learn C
    compare_gbm: bool = True


def _columns(cohort: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    cols = {k: v[mask] for k, v in cohort.items()}
    cols["altered_mentation"] = altered_mentation(cols["gcs"], cols["consciousness"])
    return cols


def fit_variant(cols: dict[str, np.ndarray], y: np.ndarray, variant: str, specs: tuple[FeatureSpec, ...],
                c: float) -> dict[str, Any]:
    """Fitted variant as stored in the model JSON (mean/scale/coef in feature order)."""
    x = design(cols, specs)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return {"id": variant, "features": [s.as_dict() for s in specs], "mean": mean.round(6).tolist(),
            "scale": scale.round(6).tolist(), "coef": clf.coef_[0].round(6).tolist(),
            "intercept": round(float(clf.intercept_[0]), 6)}


def predict_variant(doc: dict[str, Any], cols: dict[str, np.ndarray]) -> np.ndarray:
    specs = tuple(FeatureSpec(**f) for f in doc["features"])
    z = (design(cols, specs) - np.asarray(doc["mean"])) / np.asarray(doc["scale"])
    return 1.0 / (1.0 + np.exp(-(doc["intercept"] + z @ np.asarray(doc["coef"]))))


def calibration(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Quantile-bin reliability table, expected calibration error, and the calibration intercept and
    slope (logistic recalibration of y on logit p; ideal 0 and 1)."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        if not sel.any():
            continue
        mp, obs = float(p[sel].mean()), float(y[sel].mean())
        ece += sel.mean() * abs(mp - obs)
        table.append({"bin": b + 1, "n": int(sel.sum()), "mean_predicted": round(mp, 4), "observed": round(obs, 4)})
    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1)).reshape(-1, 1)
    recal = LogisticRegression(C=np.inf, max_iter=1000).fit(logit, y)
    return {"bins": table, "ece": round(float(ece), 4), "slope": round(float(recal.coef_[0][0]), 3),
            "intercept": round(float(recal.intercept_[0]), 3)}


def metrics(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(y)), "positives": int(y.sum()), "auroc": round(float(roc_auc_score(y, p)), 4),
            "auprc": round(float(average_precision_score(y, p)), 4),
            "brier": round(float(brier_score_loss(y, p)), 4), "calibration": calibration(p, y)}


def score_baselines(cols: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """AUROC of the NEWS2 total and the qSOFA count on the same held-out rows."""
    n2, qs = np.zeros(len(y)), np.zeros(len(y))
    keys = ("respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature_c")
    for i in range(len(y)):
        obs = SepsisObservation.model_validate({
            **{k: float(cols[k][i]) for k in keys}, "spo2_scale": int(cols["spo2_scale"][i]),
            "on_oxygen": bool(cols["on_oxygen"][i]), "consciousness": str(cols["consciousness"][i]),
            "gcs": int(cols["gcs"][i])})
        chart = at_chart_precision(obs)
        n2[i] = news2(chart).total or 0
        qs[i] = qsofa(chart).total or 0
    return {"news2_total": round(float(roc_auc_score(y, n2)), 4), "qsofa_total": round(float(roc_auc_score(y, qs)), 4)}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Generate, fit, evaluate, write ``sepsis_risk.json`` and ``MODEL_CARD.md``; return the model doc."""
    cohort = generate(cfg.cohort)
    test = split_patients(cohort, cfg.test_fraction, cfg.cohort.seed)
    tr, te = _columns(cohort, ~test), _columns(cohort, test)
    y_tr, y_te = cohort["label"][~test], cohort["label"][test]
    variants, evaluation = [], {}
    for vid, specs in VARIANTS.items():
        doc = fit_variant(tr, y_tr, vid, specs, cfg.inverse_regularization)
        variants.append(doc)
        evaluation[vid] = metrics(predict_variant(doc, te), y_te)
        LOGGER.info("variant %s: held-out AUROC %.3f", vid, evaluation[vid]["auroc"])
    reference: dict[str, float] = score_baselines(te, y_te)
    if cfg.compare_gbm:
        specs = VARIANTS["vitals_labs"]
        gbm = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(design(tr, specs), y_tr)
        reference["gradient_boosting_vitals_labs"] = round(float(roc_auc_score(
            y_te, gbm.predict_proba(design(te, specs))[:, 1])), 4)
    model = {
        "name": "sepsis_risk", "version": cfg.version, "kind": "logistic_regression_standardised",
        "horizon_hours": int(cfg.cohort.horizon_h), "trained": date.today().isoformat(),
        "training": {"cohort": cfg.cohort.as_dict(), "test_fraction": cfg.test_fraction,
                     "train_rows": int((~test).sum()), "test_rows": int(test.sum()),
                     "train_positive_rate": round(float(y_tr.mean()), 4), "C": cfg.inverse_regularization},
        "variants": variants, "evaluation": evaluation, "reference_auroc": reference,
    }
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "sepsis_risk.json").write_text(json.dumps(model, indent=1) + "\n")
    write_card(model, cfg.out_dir / "MODEL_CARD.md")
    return model
