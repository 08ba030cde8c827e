"""Hourly arrival forecast: a Poisson log-linear model (hour of day, day of week, hour of day ×
weekend, linear trend, holiday) fitted with statsmodels, with negative-binomial predictive
intervals (dispersion α from the Pearson residuals), the seasonal-naive baseline (same hour last
week) and a rolling-origin backtest of both.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import statsmodels.api as sm
from scipy import stats
from threadpoolctl import threadpool_limits

LOGGER = logging.getLogger(__name__)

WEEK = 168
MIN_HISTORY_HOURS = 2 * WEEK


@dataclass(frozen=True)
class Fitted:
    """A fitted model: coefficients over :func:`design` columns, dispersion α, time origin."""

    params: np.ndarray
    alpha: float
    origin: datetime
    use_holiday: bool


def design(hours: list[datetime], origin: datetime, holidays: frozenset[date], use_holiday: bool) -> np.ndarray:
    """Columns: intercept, 23 hour-of-day, 6 day-of-week, 23 hour-of-day × weekend (hour 0 is the
    reference of both, so the design has full rank), trend (weeks since ``origin``), holiday."""
    n = len(hours)
    hod = np.array([h.hour for h in hours])
    dow = np.array([h.weekday() for h in hours])
    x = np.zeros((n, 1 + 23 + 6 + 23 + 1 + int(use_holiday)))
    x[:, 0] = 1.0
    rows = np.arange(n)
    x[rows[hod > 0], hod[hod > 0]] = 1.0
    x[rows[dow > 0], 23 + dow[dow > 0]] = 1.0
    wk = (dow >= 5) & (hod > 0)
    x[rows[wk], 29 + hod[wk]] = 1.0
    x[:, 53] = [(h - origin).total_seconds() / (WEEK * 3600) for h in hours]
    if use_holiday:
        x[:, 54] = [h.date() in holidays for h in hours]
    return x


def fit(hours: list[datetime], counts: np.ndarray, holidays: frozenset[date]) -> Fitted:
    """Poisson GLM fit; α = max(0, Σ((y − μ)² − μ) / Σ μ²) (method of moments for NB2)."""
    use_holiday = any(h.date() in holidays for h in hours)
    x = design(hours, hours[0], holidays, use_holiday)
    # one BLAS thread: these matrices are small, and threads only contend on a shared CPU (40x slower)
    with threadpool_limits(limits=1, user_api="blas"):
        res = sm.GLM(counts.astype(float), x, family=sm.families.Poisson()).fit(method="irls", maxiter=100)
    mu = res.fittedvalues
    alpha = max(0.0, float(np.sum((counts - mu) ** 2 - mu) / np.sum(mu**2)))
    return Fitted(np.asarray(res.params), alpha, hours[0], use_holiday)


def predict(model: Fitted, hours: list[datetime], holidays: frozenset[date]) -> np.ndarray:
    """Mean arrivals for each hour."""
    return np.exp(design(hours, model.origin, holidays, model.use_holiday) @ model.params)


def quantiles(mean: np.ndarray, alpha: float, q: float) -> np.ndarray:
    """Quantile ``q`` of NB2(mean, α) (Poisson when α = 0)."""
    mean = np.maximum(mean, 1e-9)
    if alpha <= 1e-9:
        return stats.poisson.ppf(q, mean)
    n = 1.0 / alpha
    return stats.nbinom.ppf(q, n, n / (n + mean))


def future_hours(last: datetime, horizon: int) -> list[datetime]:
    return [last + timedelta(hours=i + 1) for i in range(horizon)]


def seasonal_naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """Same hour last week, repeated weekly past one week of horizon."""
    last_week = history[-WEEK:]
    return np.array([last_week[i % WEEK] for i in range(horizon)], dtype=float)


@dataclass(frozen=True)
class NaiveForecast:
    """Seasonal-naive forecast with normal prediction intervals (Hyndman & Athanasopoulos,
    Forecasting: Principles and Practice, 3rd ed., section 5.5: for the seasonal naive method
    sigma_h = sigma * sqrt(k + 1), k = floor((h - 1) / m), m = 168 h; sigma from the in-sample
    residuals y_t - y_(t-168)). *sigma_hourly*: per step of the horizon; *sigma_daily*: the residual
    SD of complete-day totals against the same weekday a week earlier (None with < 2 such pairs)."""

    mean: np.ndarray
    sigma_hourly: np.ndarray
    sigma_daily: float | None


def naive_forecast(hours: list[datetime], counts: np.ndarray, horizon: int) -> NaiveForecast:
    """The seasonal-naive forecast of the next *horizon* hours from a history of >= 2 weeks."""
    residuals = (counts[WEEK:] - counts[:-WEEK]).astype(float)
    sigma = float(np.sqrt(np.mean(residuals**2)))
    k = np.arange(horizon) // WEEK
    days: dict[date, list[int]] = {}
    for i, h in enumerate(hours):
        days.setdefault(h.date(), []).append(i)
    totals = {d: float(counts[idx].sum()) for d, idx in days.items() if len(idx) == 24}
    pairs = [totals[d] - totals[d - timedelta(days=7)] for d in totals if d - timedelta(days=7) in totals]
    sigma_daily = float(np.sqrt(np.mean(np.square(pairs)))) if len(pairs) >= 2 else None
    return NaiveForecast(seasonal_naive(counts, horizon), sigma * np.sqrt(k + 1.0), sigma_daily)


@dataclass(frozen=True)
class Scores:
    mae: float
    mase: float
    mae_daily: float | None
    mape_daily: float | None


def _daily_errors(hours: list[datetime], actual: np.ndarray, pred: np.ndarray) -> list[tuple[float, float]]:
    """(absolute error, absolute percentage error) of each complete calendar day in the window."""
    by_day: dict[date, list[int]] = {}
    for i, h in enumerate(hours):
        by_day.setdefault(h.date(), []).append(i)
    errors = []
    for idx in by_day.values():
        if len(idx) == 24 and actual[idx].sum() > 0:
            err = abs(float(actual[idx].sum() - pred[idx].sum()))
            errors.append((err, err / float(actual[idx].sum()) * 100))
    return errors


def backtest(hours: list[datetime], counts: np.ndarray, holidays: frozenset[date], origins: int,
             horizon: int = WEEK) -> tuple[Scores, Scores, int] | None:
    """Rolling origin: the last ``origins`` weeks, each forecast from the data before it. MASE is
    scaled by the in-sample MAE of the seasonal naive (lag 168) on each origin's training data.
    Returns (model, seasonal naive, origins used) or None when the history is too short."""
    usable = min(origins, (len(counts) - MIN_HISTORY_HOURS) // horizon)
    if usable < 1:
        return None
    acc: dict[str, list[float]] = {f"{t}_{k}": [] for t in "mn" for k in ("ae", "mase", "de", "pe")}
    for k in range(usable, 0, -1):
        cut = len(counts) - k * horizon
        train_h, train_y = hours[:cut], counts[:cut]
        test_h, test_y = hours[cut:cut + horizon], counts[cut:cut + horizon].astype(float)
        scale = float(np.mean(np.abs(train_y[WEEK:] - train_y[:-WEEK]))) or 1.0
        model_pred = predict(fit(train_h, train_y, holidays), test_h, holidays)
        naive_pred = seasonal_naive(train_y, horizon)
        for tag, pred in (("m", model_pred), ("n", naive_pred)):
            mae = float(np.mean(np.abs(test_y - pred)))
            acc[f"{tag}_ae"].append(mae)
            acc[f"{tag}_mase"].append(mae / scale)
            daily = _daily_errors(test_h, test_y, pred)
            acc[f"{tag}_de"].extend(e for e, _ in daily)
            acc[f"{tag}_pe"].extend(p for _, p in daily)

    def scores(tag: str) -> Scores:
        de, pe = acc[f"{tag}_de"], acc[f"{tag}_pe"]
        return Scores(round(float(np.mean(acc[f"{tag}_ae"])), 4), round(float(np.mean(acc[f"{tag}_mase"])), 4),
                      round(float(np.mean(de)), 3) if de else None, round(float(np.mean(pe)), 3) if pe else None)

    return scores("m"), scores("n"), usable
