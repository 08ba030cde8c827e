"""The library fits that replaced hand-written ones agree with them on fixed synthetic data.

The hand-written versions (Newton's method for the lung second stage and for mammography Platt scaling,
two AUCs, the lung FROC over every threshold) are kept here, verbatim as they were, as the reference:
scikit-learn's ``LogisticRegression`` / ``roc_auc_score`` and MONAI's ``compute_froc_curve_data`` must give
the same figures. Shipped model cards are not refitted; this is what a refit would agree with.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.lung_nodules.rescore import FEATURES
from models.mammography.detection import Platt, sigmoid
from training.lung_nodules.classifier import patch_metrics
from training.lung_nodules.metrics import FP_RATES, MIN_SIZE_MM, ScanResult, froc, match
from training.lung_nodules.rescore import fit
from training.mammography.evaluate import auc, fit_platt


# -- the hand-written references, as they were ---------------------------------------------------------------
def _old_rescore_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> tuple[Any, ...]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.c_[(x - mean) / scale, np.ones(len(x))]
    penalty = l2 * np.diag(np.r_[np.ones(x.shape[1]), 0.0])
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + penalty @ w
        hess = (z * (p * (1.0 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[:-1], w[-1]


def _logistic_loss(a: float, b: float, x: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = a * x + b
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * ((a - 1.0) ** 2 + b**2))


def _old_fit_platt(logits: Any, hits: Any, l2: float = 1e-3) -> Platt:
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(hits, dtype=np.float64)
    if x.size == 0 or y.min() == y.max():
        return Platt()
    a, b = 1.0, 0.0
    loss = _logistic_loss(a, b, x, y, l2)
    for _ in range(100):
        p = np.asarray(sigmoid(a * x + b))
        w = p * (1 - p)
        grad = np.array([np.sum((p - y) * x) + l2 * (a - 1.0), np.sum(p - y) + l2 * b])
        hess = np.array([[np.sum(w * x * x) + l2, np.sum(w * x)], [np.sum(w * x), np.sum(w) + l2]])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and _logistic_loss(a - t * step[0], b - t * step[1], x, y, l2) > loss:
            t /= 2.0
        a, b = a - t * step[0], b - t * step[1]
        new = _logistic_loss(a, b, x, y, l2)
        if loss - new < 1e-10:
            break
        loss = new
    return Platt(float(a), float(b))


def _old_mammo_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def _old_rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(np.r_[neg, pos], kind="stable"), kind="stable") + 1.0
    return float((ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _old_operating(scans: list[ScanResult], threshold: float) -> tuple[float, float]:
    total = sum(1 for s in scans for t in s.truth if t["mean_diameter_mm"] >= MIN_SIZE_MM)
    hit, fps = 0, 0
    for s in scans:
        hits, fp = match(s, threshold)
        fps += fp
        hit += sum(1 for j in hits if s.truth[j]["mean_diameter_mm"] >= MIN_SIZE_MM)
    return (hit / total if total else float("nan")), fps / max(len(scans), 1)


def _old_froc_points(scans: list[ScanResult]) -> dict[str, Any]:
    thresholds = sorted({f["score"] for s in scans for f in s.found}, reverse=True) or [1.0]
    curve = [(t, *_old_operating(scans, t)) for t in thresholds]
    points = {}
    for rate in FP_RATES:
        ok = [(sens, t) for t, sens, fp in curve if fp <= rate]
        sens, t = max(ok, default=(0.0, 1.0))
        points[str(rate)] = {"sensitivity": round(sens, 4), "threshold": round(t, 4)}
    return points


# -- fixed synthetic data ------------------------------------------------------------------------------------
def _candidates(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    x = rng.normal(0.0, 1.0, (n, len(FEATURES))) * rng.uniform(0.2, 20.0, len(FEATURES)) + rng.normal(0, 5, len(FEATURES))
    z = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std() - 0.7 * (x[:, 4] - x[:, 4].mean()) / x[:, 4].std()
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(1.5 * z - 1.0)))
    return x, y


@pytest.mark.parametrize("seed", range(4))
def test_second_stage_fit_agrees_with_newton(seed: int) -> None:
    x, y = _candidates(seed)
    mean, scale, weights, bias = _old_rescore_fit(x, y)
    model = fit(x, y)
    np.testing.assert_allclose(model.mean, mean, rtol=0, atol=0)
    np.testing.assert_allclose(model.scale, scale, rtol=0, atol=0)
    np.testing.assert_allclose(model.weights, weights, rtol=0, atol=1e-8)
    assert model.bias == pytest.approx(bias, abs=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_platt_agrees_with_newton(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    y = rng.random(600) < 0.25
    logits = rng.normal(-2.0, 2.5, 600) + 3.0 * y
    old, new = _old_fit_platt(logits, y), fit_platt(logits, y)
    # the old penalty pulled (a, b) towards the identity (1, 0), scikit-learn's towards a = 0 with b free; with
    # l2 = 1e-3 against ~100 candidates of each class the two optima differ by less than 1e-4
    assert new.a == pytest.approx(old.a, abs=1e-4) and new.b == pytest.approx(old.b, abs=1e-4)


def test_platt_fit_recovers_a_known_scaling() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 4.0, 4000)
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.5 * x - 1.0)))
    fitted = fit_platt(x, y)
    assert fitted.a == pytest.approx(0.5, abs=0.08) and fitted.b == pytest.approx(-1.0, abs=0.15)
    assert fit_platt([1.0, 2.0], [True, True]) == Platt()  # one class only: identity


def test_aucs_agree_with_the_hand_written_ones() -> None:
    rng = np.random.default_rng(7)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(0.0, 1.0, 300) + labels, 1)  # rounded: ties, which count one half
    assert auc(scores, labels) == pytest.approx(_old_mammo_auc(scores, labels), abs=1e-12)
    assert np.isnan(auc(scores, np.zeros(300, bool)))
    logits = rng.normal(0.0, 1.0, 300).astype(np.float32) + labels  # a network's logits: no ties
    kinds = ["solid" if i % 2 else "part-solid" for i in range(300)]
    patches: Any = type("P", (), {"positive": labels, "kind": kinds})()
    assert patch_metrics(logits, patches)["auc"] == round(_old_rank_auc(logits[labels], logits[~labels]), 4)


def _froc_scans(seed: int) -> list[ScanResult]:
    """Scans with nodules of 3-12 mm, hits, second hits of the same nodule, misses and false positives."""
    rng = np.random.default_rng(seed)
    scans = []
    for s in range(12):
        truth = [{"centre_mm": [60.0 * k, 0.0, 0.0], "mean_diameter_mm": float(rng.uniform(3.0, 12.0))}
                 for k in range(int(rng.integers(0, 4)))]
        found = []
        for t in truth:
            for _ in range(int(rng.integers(0, 3))):  # 0: missed; 2: a second hit (ignored)
                found.append({"score": round(float(rng.uniform(0.2, 1.0)), 3),
                              "centre_mm": [t["centre_mm"][0] + float(rng.uniform(-1, 1)), 0.0, 0.0]})
        found += [{"score": round(float(rng.uniform(0.0, 1.0)), 3), "centre_mm": [1000.0 + 30 * k, 0.0, 0.0]}
                  for k in range(int(rng.integers(0, 6)))]
        scans.append(ScanResult(f"s{s}", truth, found))
    return scans


@pytest.mark.parametrize("seed", range(6))
def test_froc_points_are_the_figures_of_the_threshold_sweep(seed: int) -> None:
    scans = _froc_scans(seed)
    assert froc(scans)["points"] == _old_froc_points(scans)


def test_froc_edge_cases() -> None:
    lone_fp = [ScanResult("a", [], [{"score": 0.9, "centre_mm": [0.0, 0.0, 0.0]}])]
    assert str(froc(lone_fp)["points"]) == str(_old_froc_points(lone_fp))  # no nodule: NaN sensitivity (as text)
    nothing = [ScanResult("b", [{"centre_mm": [0.0, 0.0, 0.0], "mean_diameter_mm": 8.0}], [])]
    assert froc(nothing)["points"] == _old_froc_points(nothing)
    small_only = [ScanResult("c", [{"centre_mm": [0.0, 0.0, 0.0], "mean_diameter_mm": 4.0},
                                   {"centre_mm": [50.0, 0.0, 0.0], "mean_diameter_mm": 6.0}],
                             [{"score": 0.8, "centre_mm": [0.0, 0.0, 0.0]}, {"score": 0.3, "centre_mm": [90.0, 0, 0]}])]
    assert froc(small_only)["points"] == _old_froc_points(small_only)
    assert str(froc([])["points"]) == str(_old_froc_points([]))
