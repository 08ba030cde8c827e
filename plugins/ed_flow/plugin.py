"""The emergency-department flow plugin: forecast with intervals, daily totals, occupancy
(Little's law), rolling-origin backtest against the seasonal naive, Erlang C staffing."""
from __future__ import annotations

import logging
import math
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from plugins import fhir
from plugins.base import Plugin, Provenance
from plugins.ed_flow import forecast as fc
from plugins.ed_flow.models import (
    Backtest,
    DayForecast,
    EdFlowInput,
    EdFlowOutput,
    Forecast,
    HourForecast,
    MethodScores,
    Occupancy,
    QueueMetrics,
    Staffing,
)
from plugins.ed_flow.queueing import erlang_c, min_servers
from plugins.errors import FieldProblem, InvalidInput

LOGGER = logging.getLogger(__name__)

MODEL = ("Poisson log-linear GLM (hour of day, day of week, hour x weekend, trend, holiday), "
         "negative-binomial intervals")
NAIVE = ("seasonal naive (same hour last week), normal intervals sigma x sqrt(k + 1), k = whole weeks ahead "
         "(Hyndman & Athanasopoulos, FPP3 5.5)")
RULES = [MODEL, "baseline: seasonal naive (same hour last week)",
         "the GLM is served only when it beats the seasonal naive in the backtest (lower MAE and MASE); "
         "otherwise the seasonal naive forecast is served and the output says so",
         "backtest: rolling origin over the last weeks; MAE and MASE hourly, MAE and MAPE on complete days",
         "occupancy: Little's law L = lambda W; hourly: sum_k lambda(t-k) P(LOS > k + 0.5 h)",
         "staffing: M/M/c Erlang C (P0, P(wait), Lq, Wq)"]


def _bad(field: str, rule: str) -> InvalidInput:
    return InvalidInput("ed_flow", [FieldProblem(field, rule)])


#: The longest history taken, in hours (5 years): arrivals decades apart would otherwise allocate one slot per hour
#: between them (0001 to 9999: 88 million hours, 16 GB, met by the property tests of the API).
MAX_HISTORY_HOURS = 5 * 366 * 24


def history(data: EdFlowInput) -> tuple[list[datetime], np.ndarray]:
    """Contiguous hourly counts from arrivals or ``hourly_counts``. Raises :class:`InvalidInput` (also for a
    history longer than :data:`MAX_HISTORY_HOURS`)."""
    if data.arrivals is not None:
        stamps = data.arrivals
        if len({s.tzinfo is None for s in stamps}) > 1:
            raise _bad("arrivals", "all times must carry a UTC offset, or none")
        tz = stamps[0].tzinfo if stamps else None
        floors = sorted((s.astimezone(tz) if tz else s).replace(minute=0, second=0, microsecond=0) for s in stamps)
        if not floors:
            raise _bad("arrivals", "at least one arrival is required")
        n = int((floors[-1] - floors[0]).total_seconds() // 3600) + 1
        if n > MAX_HISTORY_HOURS:
            raise _bad("arrivals", f"the arrivals span {n} hours; at most {MAX_HISTORY_HOURS} (5 years)")
        counts = np.zeros(n, dtype=np.int64)
        for f in floors:
            counts[int((f - floors[0]).total_seconds() // 3600)] += 1
        return [floors[0] + timedelta(hours=i) for i in range(n)], counts
    if len({r.hour.tzinfo is None for r in data.hourly_counts or []}) > 1:
        raise _bad("hourly_counts", "all hours must carry a UTC offset, or none")
    rows = sorted(enumerate(data.hourly_counts or []), key=lambda r: r[1].hour)
    for (_, prev), (i, cur) in zip(rows, rows[1:]):
        step = (cur.hour - prev.hour).total_seconds()
        if step != 3600:
            rule = "duplicate hour" if step == 0 else f"hours must be contiguous (gap after {prev.hour.isoformat()})"
            raise _bad(f"hourly_counts[{i}].hour", rule)
    return [r.hour for _, r in rows], np.array([r.count for _, r in rows], dtype=np.int64)


def _interval_kwargs(mean: np.ndarray, alpha: float) -> dict[str, list[float]]:
    qs = {"lo80": 0.10, "hi80": 0.90, "lo95": 0.025, "hi95": 0.975}
    out = {"mean": np.round(mean, 3).tolist()}
    out.update({k: fc.quantiles(mean, alpha, q).astype(float).tolist() for k, q in qs.items()})
    return out


def _daily(hours: list[datetime], mean: np.ndarray, alpha: float) -> list[DayForecast]:
    """Daily totals: mean Σμ, variance Σ(μ + αμ²), intervals from the moment-matched NB."""
    days: dict[date, list[int]] = {}
    for i, h in enumerate(hours):
        days.setdefault(h.date(), []).append(i)
    out = []
    for day, idx in days.items():
        m = float(mean[idx].sum())
        var = float(np.sum(mean[idx] + alpha * mean[idx] ** 2))
        a_day = max(0.0, (var - m) / m**2) if m > 0 else 0.0
        iv = _interval_kwargs(np.array([m]), a_day)
        out.append(DayForecast(date=day, hours=len(idx), **{k: v[0] for k, v in iv.items()}))
    return out


class EdFlowPlugin(Plugin[EdFlowInput, EdFlowOutput]):
    """ED arrivals forecast, occupancy, backtest and staffing (bundled history: ``data/history.csv``)."""

    name = "ed_flow"
    version = "1.0.0"
    summary = "hourly ED arrival forecast with 80/95 % intervals, daily totals, occupancy, backtest, Erlang C"
    input_model = EdFlowInput
    output_model = EdFlowOutput
    csv_is_batch = False  # a CSV file is one history
    disclaimer = ("Planning aid, not a guarantee: forecasts are statistical estimates from the history sent, with "
                  "prediction intervals; the forecast served is the one that did better in the backtest against the "
                  "seasonal naive baseline (see forecast.notice). Staff decisions stay with the department.")

    def provenance(self) -> Provenance:
        return Provenance(model=MODEL, model_version=self.version,
                          trained_on="fitted at each request on the arrival history sent (nothing pre-trained)",
                          review_status="checked per request by a rolling-origin backtest against the seasonal naive")

    def run(self, data: EdFlowInput) -> EdFlowOutput:
        explanation: list[str] = []
        fcast = occ = bt = None
        means: np.ndarray | None = None
        if data.arrivals is not None or data.hourly_counts is not None:
            hours, counts = history(data)
            holidays = frozenset(data.holidays)
            bt = self._backtest(hours, counts, data, holidays)
            fcast, means = self._forecast(hours, counts, data, holidays, bt)
            occ = self._occupancy(counts, means, data)
            explanation += _explain(fcast, bt, occ)
        staffing = self._staffing(data, means)
        if staffing and staffing.min_servers is not None:
            explanation.append(f"smallest number of servers for a mean wait <= {staffing.target_wait_minutes:g} min: "
                               f"{staffing.min_servers}")
        return EdFlowOutput(plugin=self.name, version=self.version, ref=data.ref, rules=RULES,
                            explanation=explanation, forecast=fcast, occupancy=occ, backtest=bt, staffing=staffing)

    def _forecast(self, hours: list[datetime], counts: np.ndarray, data: EdFlowInput,
                  holidays: frozenset[date], bt: Backtest) -> tuple[Forecast, np.ndarray | None]:
        """The GLM forecast, or the seasonal naive one when the GLM did not beat it in *bt*."""
        if len(counts) < fc.MIN_HISTORY_HOURS:
            return Forecast(status="not computed", reason=f"history of {len(counts)} h; at least "
                            f"{fc.MIN_HISTORY_HOURS} h (2 weeks) needed", model=MODEL, history_hours=len(counts)), None
        future = fc.future_hours(hours[-1], data.horizon_hours)
        if bt.beats_baseline is False:
            return _naive(hours, counts, future, bt)
        model = fc.fit(hours, counts, holidays)
        mean = fc.predict(model, future, holidays)
        iv = _interval_kwargs(mean, model.alpha)
        hourly = [HourForecast(hour=h, **{k: v[i] for k, v in iv.items()}) for i, h in enumerate(future)]
        notice = ("model served: it beat the seasonal naive baseline in the backtest" if bt.beats_baseline else
                  f"model served WITHOUT a check against the seasonal naive baseline (backtest not computed: "
                  f"{bt.reason})")
        return Forecast(status="computed", model=MODEL, served="model", notice=notice, history_hours=len(counts),
                        dispersion_alpha=round(model.alpha, 5), hourly=hourly,
                        daily=_daily(future, mean, model.alpha)), mean

    def _backtest(self, hours: list[datetime], counts: np.ndarray, data: EdFlowInput,
                  holidays: frozenset[date]) -> Backtest:
        if data.backtest_origins == 0:
            return Backtest(status="not computed", reason="backtest_origins is 0")
        res = fc.backtest(hours, counts, holidays, data.backtest_origins)
        if res is None:
            return Backtest(status="not computed", reason=f"history of {len(counts)} h; at least "
                            f"{fc.MIN_HISTORY_HOURS + fc.WEEK} h (3 weeks) needed")
        model, naive, used = res
        to = lambda s: MethodScores(mae_hourly=s.mae, mase_hourly=s.mase, mae_daily=s.mae_daily,  # noqa: E731
                                    mape_daily_percent=s.mape_daily)
        return Backtest(status="computed", origins=used, model=to(model), seasonal_naive=to(naive),
                        beats_baseline=model.mae < naive.mae and model.mase < naive.mase)

    def _occupancy(self, counts: np.ndarray, means: np.ndarray | None, data: EdFlowInput) -> Occupancy:
        los = data.length_of_stay_hours
        w = float(np.mean(los)) if los else data.mean_length_of_stay_hours
        if means is None or w is None:
            reason = "no forecast" if means is None else "no length of stay given"
            return Occupancy(status="not computed", reason=reason, mean_arrivals_per_hour=None,
                             mean_length_of_stay_hours=w, expected_occupancy=None)
        lam = float(np.mean(means))
        hourly = peak = None
        if los:
            stay = np.asarray(los, dtype=float)
            survival = np.array([np.mean(stay > k + 0.5) for k in range(int(math.ceil(stay.max())) + 1)])
            rates = np.concatenate([counts.astype(float), means])
            start = len(counts)
            hourly = [round(float(sum(rates[t - k] * s for k, s in enumerate(survival) if t - k >= 0)), 3)
                      for t in range(start, len(rates))]
            peak = max(hourly)
        return Occupancy(status="computed", mean_arrivals_per_hour=round(lam, 4), mean_length_of_stay_hours=round(w, 4),
                         expected_occupancy=round(lam * w, 3), hourly=hourly, peak=peak)

    def _staffing(self, data: EdFlowInput, means: np.ndarray | None) -> Staffing | None:
        q = data.queue
        if q is None:
            return None
        rate = q.arrival_rate_per_hour or (float(np.max(means)) if means is not None else None)
        if rate is None:
            raise _bad("queue.arrival_rate_per_hour", "required when no forecast could be computed")
        metrics = None
        if q.servers is not None:
            r = erlang_c(rate, q.service_rate_per_hour, q.servers)
            metrics = QueueMetrics(arrival_rate_per_hour=rate, servers=q.servers, stable=r.stable,
                                   utilization=round(r.utilization, 6), p_wait=round(r.p_wait, 6),
                                   lq=None if r.lq is None else round(r.lq, 6),
                                   wq_minutes=None if r.wq_minutes is None else round(r.wq_minutes, 4))
        best = hourly = None
        if q.target_wait_minutes is not None:
            best = min_servers(rate, q.service_rate_per_hour, q.target_wait_minutes)
            if q.arrival_rate_per_hour is None and means is not None:
                hourly = [min_servers(float(m), q.service_rate_per_hour, q.target_wait_minutes) for m in means]
        return Staffing(erlang_c=metrics, target_wait_minutes=q.target_wait_minutes, min_servers=best,
                        hourly_min_servers=hourly)

    def from_csv_rows(self, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        """``hour,count`` rows (hourly counts) or ``arrival[,length_of_stay_hours]`` rows (visits)."""
        cols = set(rows[0])
        if {"hour", "count"} <= cols:
            return [{"hourly_counts": [{"hour": r["hour"], "count": r["count"]} for r in rows]}]
        if "arrival" in cols:
            doc: dict[str, Any] = {"arrivals": [r["arrival"] for r in rows]}
            if "length_of_stay_hours" in cols:
                doc["length_of_stay_hours"] = [r["length_of_stay_hours"] for r in rows if r["length_of_stay_hours"]]
            return [doc]
        raise _bad("(csv header)", "ed_flow CSV needs columns hour,count or arrival[,length_of_stay_hours]")

    def from_fhir(self, bundle: Any) -> list[dict[str, Any]]:
        """Emergency Encounters (class EMER, or no class): period.start = arrival, end − start = stay."""
        arrivals, stays = [], []
        for enc in fhir.resources(bundle, "Encounter"):
            cls = getattr(enc, "class_fhir", None)
            if cls is not None and cls.code not in ("EMER", None):
                continue
            start = fhir.as_datetime(enc.period.start if enc.period else None)
            if start is None:
                raise _bad(f"{fhir.label(enc)}.period.start", "an emergency encounter needs its start time")
            arrivals.append(start)
            end = fhir.as_datetime(enc.period.end)
            if end is not None:
                stays.append(round((end - start).total_seconds() / 3600, 4))
        if not arrivals:
            raise _bad("Bundle.entry", "no emergency Encounter")
        doc: dict[str, Any] = {"arrivals": arrivals}
        if stays:
            doc["length_of_stay_hours"] = stays
        return [doc]


def _naive(hours: list[datetime], counts: np.ndarray, future: list[datetime],
           bt: Backtest) -> tuple[Forecast, np.ndarray]:
    """The seasonal naive forecast, served because the GLM did not beat it in the backtest."""
    nf = fc.naive_forecast(hours, counts, len(future))
    z80, z95 = 1.2815516, 1.959964

    def interval(mean: float, sigma: float) -> dict[str, float]:
        return {"mean": round(mean, 3), "lo80": max(0.0, float(np.floor(mean - z80 * sigma))),
                "hi80": float(np.ceil(mean + z80 * sigma)), "lo95": max(0.0, float(np.floor(mean - z95 * sigma))),
                "hi95": float(np.ceil(mean + z95 * sigma))}

    hourly = [HourForecast(hour=h, **interval(float(nf.mean[i]), float(nf.sigma_hourly[i])))
              for i, h in enumerate(future)]
    days: dict[date, list[int]] = {}
    for i, h in enumerate(future):
        days.setdefault(h.date(), []).append(i)
    daily = []
    for j, (day, idx) in enumerate(days.items()):
        total = float(nf.mean[idx].sum())
        sigma = nf.sigma_daily * math.sqrt(j // 7 + 1) if nf.sigma_daily is not None else \
            float(np.sqrt(np.sum(nf.sigma_hourly[idx] ** 2)))
        daily.append(DayForecast(date=day, hours=len(idx), **interval(total, sigma)))
    model, naive = bt.model, bt.seasonal_naive
    notice = ("SEASONAL NAIVE BASELINE SERVED (same hour last week): the model did not beat it in the backtest "
              f"(MASE {model.mase_hourly if model else '?'} vs {naive.mase_hourly if naive else '?'}, "
              f"MAE {model.mae_hourly if model else '?'} vs {naive.mae_hourly if naive else '?'} arrivals/h); "
              "the model's forecast is not shown")
    return Forecast(status="computed", model=NAIVE, served="seasonal_naive", notice=notice,
                    history_hours=len(counts), hourly=hourly, daily=daily), nf.mean


def _explain(fcast: Forecast, bt: Backtest, occ: Occupancy) -> list[str]:
    lines = [fcast.notice] if fcast.notice and fcast.served == "seasonal_naive" else []
    if fcast.status == "computed":
        total = sum(h.mean for h in fcast.hourly)
        what = "seasonal naive forecast" if fcast.served == "seasonal_naive" else "forecast"
        lines.append(f"{what} of {len(fcast.hourly)} h from {fcast.history_hours} h of history: "
                     f"{total:.0f} arrivals expected" + (f" (dispersion alpha {fcast.dispersion_alpha})"
                                                         if fcast.dispersion_alpha is not None else ""))
        if fcast.served == "model" and fcast.notice:
            lines.append(fcast.notice)
    else:
        lines.append(f"forecast not computed: {fcast.reason}")
    if bt.status == "computed" and bt.model and bt.seasonal_naive:
        lines.append(f"backtest over {bt.origins} week(s): MASE {bt.model.mase_hourly} vs seasonal naive "
                     f"{bt.seasonal_naive.mase_hourly}; daily MAPE {bt.model.mape_daily_percent} % vs "
                     f"{bt.seasonal_naive.mape_daily_percent} %")
    if occ.expected_occupancy is not None:
        lines.append(f"expected occupancy {occ.expected_occupancy:g} patients (lambda {occ.mean_arrivals_per_hour}/h x "
                     f"W {occ.mean_length_of_stay_hours} h)")
    return lines
