"""The sepsis plugin: NEWS2, qSOFA, SIRS, SOFA, a risk model and, for a series, the trend."""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from plugins.base import Plugin, Provenance, nest_dotted
from plugins.sepsis.fhir_map import sepsis_inputs
from plugins.sepsis.models import (
    Risk,
    SepsisInput,
    SepsisObservation,
    SepsisOutput,
    SeriesTrend,
    Trend,
    TrendPoint,
)
from plugins.sepsis.risk import DEFAULT_MODEL, RiskModel
from plugins.sepsis.scores import at_chart_precision, news2, qsofa, sirs
from plugins.sepsis.sofa import sofa

LOGGER = logging.getLogger(__name__)

#: A change of at least this much from the first to the last point is "rising"/"falling".
TREND_THRESHOLDS = {"news2": 2.0, "sofa": 2.0, "probability": 0.05}

RULES = [
    "NEWS2 (Royal College of Physicians 2017); vitals at chart precision (integers, temperature 0.1 °C, "
    "round half up)",
    "qSOFA (Singer 2016, JAMA 315:801): RR >= 22, altered mentation (GCS < 15; ACVPU when GCS missing), "
    "SBP <= 100; positive >= 2",
    "SIRS (ACCP/SCCM 1992): T > 38 or < 36 °C, HR > 90, RR > 20 or PaCO2 < 32, WBC > 12 or < 4 or bands > 10 %",
    "SOFA (Singer 2016, Table 1); laboratory bands half-open from each lower limit; creatinine required "
    "unless urine < 200 ml/day",
    "missing measurements are 'not computed' (total null, lower_bound = computed part), never imputed",
    "FHIR: latest value within 4 h (vitals) or 24 h (laboratory) at each observation time",
    "FHIR FiO2 (LOINC 3150-0) by unit: '%' percent; '1', or no unit with a value <= 1, a fraction (0.40 = 40 %); "
    "above 21 % = supplemental oxygen",
]


def _series(name: str, times: list[float], values: list[float | None]) -> SeriesTrend:
    pts = [(t, v) for t, v in zip(times, values, strict=True) if v is not None]
    if len(pts) < 2:
        return SeriesTrend(first=None, last=None, change=None, slope_per_hour=None, direction="not computed")
    t = np.array([p[0] for p in pts])
    v = np.array([p[1] for p in pts], dtype=float)
    slope = float(np.polyfit(t, v, 1)[0])
    change = float(v[-1] - v[0])
    limit = TREND_THRESHOLDS[name]
    direction = "rising" if change >= limit else "falling" if change <= -limit else "stable"
    return SeriesTrend(first=float(v[0]), last=float(v[-1]), change=round(change, 4),
                       slope_per_hour=round(slope, 4), direction=direction)


class SepsisPlugin(Plugin[SepsisInput, SepsisOutput]):
    """Sepsis and deterioration scores with a risk model (see ``model/MODEL_CARD.md``)."""

    name = "sepsis"
    version = "1.0.0"
    summary = "NEWS2, qSOFA, SIRS, SOFA exactly as published; sepsis risk model; trend over a series"
    input_model = SepsisInput
    output_model = SepsisOutput
    disclaimer = ("Decision support, not a diagnosis. NEWS2, qSOFA, SIRS and SOFA are computed as published from "
                  "the values sent. The sepsis risk comes from a logistic regression trained on a SYNTHETIC cohort "
                  "(simulated patients, no real patient data) and not validated on real patients: its percentage is "
                  "not a clinical probability. A clinician reviews every result.")

    def __init__(self, model_path: Path = DEFAULT_MODEL) -> None:
        self.model = RiskModel.load(model_path)

    def provenance(self) -> Provenance:
        return Provenance(model=f"{self.model.name} (standardised logistic regression)",
                          model_version=self.model.version, trained_on=self.model.trained_on,
                          review_status="not validated on real patients; a local validation on retrospective "
                                        "data is required before clinical use (model/MODEL_CARD.md)")

    def _point(self, obs: SepsisObservation) -> tuple[Any, Any, Any, Any, Risk]:
        chart = at_chart_precision(obs)
        return news2(chart), qsofa(chart), sirs(chart), sofa(chart), self.model.predict(chart)

    def run(self, data: SepsisInput) -> SepsisOutput:
        latest = data.latest()
        n2, qs, si, so, risk = self._point(latest)
        trend = self._trend(data, n2.total, so.total, risk.probability) if data.history else None
        return SepsisOutput(plugin=self.name, version=self.version, ref=data.ref, time=latest.time,
                            rules=[*RULES, f"risk: {self.model.label}"],
                            explanation=_explain(n2, qs, si, so, risk, trend),
                            news2=n2, qsofa=qs, sirs=si, sofa=so, risk=risk, trend=trend)

    def _trend(self, data: SepsisInput, n2: int | None, so: int | None, prob: float | None) -> Trend:
        points = []
        for obs in sorted(data.history, key=lambda o: o.time):  # type: ignore[arg-type, return-value]
            h_n2, _, _, h_so, h_risk = self._point(obs)
            points.append(TrendPoint(time=obs.time, news2=h_n2.total, sofa=h_so.total,  # type: ignore[arg-type]
                                     probability=h_risk.probability))
        points.append(TrendPoint(time=data.time, news2=n2, sofa=so, probability=prob))  # type: ignore[arg-type]
        t0 = points[0].time
        hours = [(p.time - t0).total_seconds() / 3600 for p in points]
        sofa_trend = _series("sofa", hours, [p.sofa for p in points])
        return Trend(hours=round(hours[-1], 3), points=points,
                     news2=_series("news2", hours, [p.news2 for p in points]), sofa=sofa_trend,
                     probability=_series("probability", hours, [p.probability for p in points]),
                     sofa_rise_ge_2=None if sofa_trend.change is None else sofa_trend.change >= 2)

    def from_fhir(self, bundle: Any) -> list[dict[str, Any]]:
        return sepsis_inputs(bundle)

    def from_csv_rows(self, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One record per row; rows sharing a ``ref`` and carrying a ``time`` form one series
        (the latest row is the record, the others its history). ``vasopressors.<drug>`` columns nest."""
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        out: list[dict[str, Any]] = []
        for row in rows:
            rec = nest_dotted(row)
            if rec.get("ref") and rec.get("time"):
                groups[rec["ref"]].append(rec)
            else:
                out.append(rec)
        for ref, recs in groups.items():
            recs.sort(key=lambda r: str(r["time"]))
            *earlier, latest = recs
            out.append({**latest, "history": [{k: v for k, v in r.items() if k != "ref"} for r in earlier]})
        return out


def _explain(n2: Any, qs: Any, si: Any, so: Any, risk: Risk, trend: Trend | None) -> list[str]:
    lines = []
    for score, label in ((n2, "NEWS2"), (so, "SOFA")):
        total = score.total if score.total is not None else f"not computed (>= {score.lower_bound}; missing " \
                                                             f"{', '.join(score.missing)})"
        parts = ", ".join(f"{c.parameter} {c.points}" for c in score.components if c.points)
        lines.append(f"{label} {total}" + (f": {parts}" if parts else ""))
    if n2.risk:
        lines.append(f"NEWS2 clinical risk {n2.risk}")
    lines.append(f"qSOFA {'positive' if qs.positive else 'negative' if qs.positive is False else 'undetermined'}"
                 f" ({qs.lower_bound} criteria met)")
    lines.append(f"SIRS {'positive' if si.positive else 'negative' if si.positive is False else 'undetermined'}"
                 f" ({si.lower_bound} criteria met)")
    if risk.probability is not None:
        top = ", ".join(f"{c.parameter} {c.log_odds:+.2f}" for c in risk.top_features[:3])
        lines.append(f"risk of sepsis onset within {risk.horizon_hours} h: {risk.probability:.1%} from a model "
                     f"trained on a synthetic cohort, not validated on real patients (largest log-odds "
                     f"contributions: {top})")
    else:
        lines.append(f"risk not computed: missing {', '.join(risk.missing)}")
    if trend is not None:
        lines.append(f"trend over {trend.hours:g} h: NEWS2 {trend.news2.direction}, SOFA {trend.sofa.direction}, "
                     f"risk {trend.probability.direction}")
    return lines
