"""Bootstrap 95 % intervals on every reported metric, and the statistics tasks share (Dice, FROC, agreement,
confusion).

:func:`bootstrap` resamples CASES (a case's record with all its values), recomputes the task's ``summarise`` on
each resample, and gives the percentile interval: seeded, so a report is reproducible. Values NaN on a
resample (e.g. no positive case drawn) are left out of that metric's percentiles.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Estimate:
    """A metric over the cases with its percentile-bootstrap interval (NaN bounds: not estimable)."""

    value: float
    low: float
    high: float
    n_cases: int

    def as_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {"value": clean(self.value), "ci95": [clean(self.low), clean(self.high)],  # type: ignore[dict-item]
                "n_cases": self.n_cases}

    def text(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.low):
            return f"{self.value:.4g}"
        return f"{self.value:.4g} (95 % CI {self.low:.4g}-{self.high:.4g})"


def bootstrap(records: Sequence[Record], summarise: Callable[[Sequence[Record]], dict[str, float]],
              resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Estimate]:
    """Each metric of ``summarise(records)`` with its percentile-bootstrap interval over cases.

    *resamples* 0: point values only (NaN bounds). Raises ValueError when *records* is empty.
    """
    if not records:
        raise ValueError("bootstrap: no case to summarise")
    point = summarise(records)
    draws: dict[str, list[float]] = {k: [] for k in point}
    rng = np.random.default_rng(seed)
    n = len(records)
    for _ in range(resamples):
        sample = [records[i] for i in rng.integers(0, n, size=n)]
        for key, value in summarise(sample).items():
            if key in draws and not math.isnan(value):
                draws[key].append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for key, value in point.items():
        values = np.array(draws[key], dtype=float)
        if values.size < max(10, resamples // 10):
            low = high = math.nan
        else:
            low, high = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
        out[key] = Estimate(float(value), low, high, n)
    return out


def report(estimates: Mapping[str, Estimate]) -> dict[str, dict[str, Any]]:
    return {k: e.as_dict() for k, e in estimates.items()}


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    p, t = pred.astype(bool), truth.astype(bool)
    denom = int(p.sum()) + int(t.sum())
    return math.nan if denom == 0 else 2.0 * int((p & t).sum()) / denom


def froc(records: Sequence[Record], fp_rates: Sequence[float] = (0.125, 0.25, 0.5, 1, 2, 4, 8)) -> dict[str, float]:
    """Sensitivity at each false-positive rate per case, from per-case ``candidate_scores`` (list), ``candidate_hits``
    (index of the truth each candidate hits, -1: false positive) and ``n_truth``; and the mean of those
    sensitivities (the CPM of LUNA16). NaN when the records hold no truth."""
    n_truth = sum(int(r.get("n_truth", 0)) for r in records)
    if n_truth == 0 or not records:
        return {f"sensitivity_at_{r:g}_fp": math.nan for r in fp_rates} | {"cpm": math.nan}
    entries = []  # (score, case, hit)
    for c, r in enumerate(records):
        entries += [(float(s), c, int(h)) for s, h in zip(r.get("candidate_scores", []), r.get("candidate_hits", []),
                                                            strict=True)]
    entries.sort(key=lambda e: -e[0])
    found: set[tuple[int, int]] = set()
    fps, curve = 0, [(0.0, 0.0)]
    for _, case, hit in entries:
        if hit < 0:
            fps += 1
        else:
            found.add((case, hit))
        curve.append((fps / len(records), len(found) / n_truth))
    out = {}
    for rate in fp_rates:
        out[f"sensitivity_at_{rate:g}_fp"] = max(s for f, s in curve if f <= rate)
    out["cpm"] = float(np.mean([out[f"sensitivity_at_{r:g}_fp"] for r in fp_rates]))
    return out


def agreement(truth: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """Bland–Altman bias (mean of predicted - truth) and 95 % limits of agreement (bias +/- 1.96 SD), and the
    mean absolute error; NaN pairs left out."""
    t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    keep = ~(np.isnan(t) | np.isnan(p))
    d = p[keep] - t[keep]
    if d.size == 0:
        return {"bias": math.nan, "loa_low": math.nan, "loa_high": math.nan, "mae": math.nan}
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    bias = float(d.mean())
    return {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "mae": float(np.abs(d).mean())}


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts [true label, predicted label] over *labels* (values outside *labels* are ignored)."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        if t in index and p in index:
            out[index[t], index[p]] += 1
    return out


def cohen_kappa(matrix: np.ndarray, weights: str | None = None) -> float:
    """Cohen's kappa of a confusion matrix (*weights* ``"linear"``/``"quadratic"`` for ordered categories)."""
    m = np.asarray(matrix, dtype=float)
    total = m.sum()
    if total == 0:
        return math.nan
    k = m.shape[0]
    i, j = np.indices((k, k))
    w = {None: (i != j).astype(float), "linear": np.abs(i - j) / max(k - 1, 1),
         "quadratic": ((i - j) / max(k - 1, 1)) ** 2}[weights]
    expected = np.outer(m.sum(1), m.sum(0)) / total
    denom = float((w * expected).sum())
    return math.nan if denom == 0 else 1.0 - float((w * m).sum()) / denom
