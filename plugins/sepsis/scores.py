"""NEWS2, qSOFA, SIRS and SOFA exactly as published (see docs in each function).

Conventions (also in the model card and the plugin's ``rules``):
- Values are first taken at chart precision: respiratory rate, SpO2, systolic BP, heart rate and
  MAP to whole numbers, temperature to 0.1 °C, round half up (20.5/min → 21). The published bands
  are written for charted values and have no gaps at that precision.
- SOFA laboratory bands are half-open, from each band's lower limit to the next one's
  (bilirubin 1.9–2.0 mg/dL → 1; 12.0 → 4; creatinine 4.95 → 3; 5.0 → 4).
- A missing measurement makes its component "not computed" and the total ``None`` (with
  ``lower_bound`` = the sum of the computed components). Nothing is imputed as normal.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from plugins.sepsis.models import Component, News2, Qsofa, SepsisObservation, Sirs

Band = tuple[float, int, str]  # (upper limit inclusive, points, label)

_NEWS2_RR: list[Band] = [(8, 3, "<= 8"), (11, 1, "9–11"), (20, 0, "12–20"), (24, 2, "21–24"), (math.inf, 3, ">= 25")]
_NEWS2_SPO2_1: list[Band] = [(91, 3, "<= 91"), (93, 2, "92–93"), (95, 1, "94–95"), (math.inf, 0, ">= 96")]
_NEWS2_SPO2_2_LOW: list[Band] = [(83, 3, "<= 83"), (85, 2, "84–85"), (87, 1, "86–87"), (92, 0, "88–92")]
_NEWS2_SPO2_2_O2: list[Band] = [(94, 1, "93–94 on oxygen"), (96, 2, "95–96 on oxygen"),
                                (math.inf, 3, ">= 97 on oxygen")]
_NEWS2_SBP: list[Band] = [(90, 3, "<= 90"), (100, 2, "91–100"), (110, 1, "101–110"), (219, 0, "111–219"),
                          (math.inf, 3, ">= 220")]
_NEWS2_HR: list[Band] = [(40, 3, "<= 40"), (50, 1, "41–50"), (90, 0, "51–90"), (110, 1, "91–110"),
                         (130, 2, "111–130"), (math.inf, 3, ">= 131")]
_NEWS2_TEMP: list[Band] = [(35.0, 3, "<= 35.0"), (36.0, 1, "35.1–36.0"), (38.0, 0, "36.1–38.0"),
                           (39.0, 1, "38.1–39.0"), (math.inf, 2, ">= 39.1")]


def round_half_up(value: float, digits: int = 0) -> float:
    """Round half away from zero for the positive values charted here (20.5 → 21, 35.05 → 35.1)."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def at_chart_precision(obs: SepsisObservation) -> SepsisObservation:
    """A copy with vitals rounded as charted (integers; temperature 0.1 °C)."""
    update: dict[str, float] = {}
    for name in ("respiratory_rate", "spo2", "systolic_bp", "heart_rate", "map"):
        value = getattr(obs, name)
        if value is not None and value != int(value):
            update[name] = round_half_up(value)
    if obs.temperature_c is not None:
        update["temperature_c"] = round_half_up(obs.temperature_c, 1)
    return obs.model_copy(update=update) if update else obs


def _band(value: float, bands: list[Band]) -> tuple[int, str]:
    for upper, points, label in bands:
        if value <= upper:
            return points, label
    raise ValueError(f"value {value} above every band")  # unreachable: the last band is open


def not_computed(parameter: str, why: str) -> Component:
    return Component(parameter=parameter, value=None, points=None, status="not computed", rule=why)


def scored(parameter: str, value: object, points: int, rule: str) -> Component:
    return Component(parameter=parameter, value=value, points=points, status="computed", rule=rule)


def _banded(parameter: str, value: float | None, bands: list[Band], unit: str) -> Component:
    if value is None:
        return not_computed(parameter, f"not computed: {parameter} missing")
    points, label = _band(value, bands)
    return scored(parameter, value, points, f"{label} {unit} → {points}")


def _news2_spo2(obs: SepsisObservation) -> Component:
    if obs.spo2 is None:
        return not_computed("spo2", "not computed: spo2 missing")
    if obs.spo2_scale == 1:
        points, label = _band(obs.spo2, _NEWS2_SPO2_1)
        return scored("spo2", obs.spo2, points, f"scale 1: {label} % → {points}")
    if obs.spo2 <= 92:
        points, label = _band(obs.spo2, _NEWS2_SPO2_2_LOW)
        return scored("spo2", obs.spo2, points, f"scale 2: {label} % → {points}")
    if obs.on_oxygen is None:
        return not_computed("spo2", "not computed: scale 2 scores SpO2 >= 93 % by oxygen use; on_oxygen missing")
    if not obs.on_oxygen:
        return scored("spo2", obs.spo2, 0, "scale 2: >= 93 % on air → 0")
    points, label = _band(obs.spo2, _NEWS2_SPO2_2_O2)
    return scored("spo2", obs.spo2, points, f"scale 2: {label} % → {points}")


def news2_components(obs: SepsisObservation) -> list[Component]:
    """The seven NEWS2 parameters (RCP 2017), each 0–3 points."""
    air = (not_computed("on_oxygen", "not computed: on_oxygen missing") if obs.on_oxygen is None
           else scored("on_oxygen", obs.on_oxygen, 2 if obs.on_oxygen else 0,
                        "supplemental oxygen → 2" if obs.on_oxygen else "air → 0"))
    if obs.consciousness is None:
        acvpu = not_computed("consciousness", "not computed: consciousness missing")
    elif obs.consciousness == "A":
        acvpu = scored("consciousness", "A", 0, "alert → 0")
    else:
        acvpu = scored("consciousness", obs.consciousness, 3, "new confusion, voice, pain or unresponsive → 3")
    return [
        _banded("respiratory_rate", obs.respiratory_rate, _NEWS2_RR, "/min"),
        _news2_spo2(obs),
        air,
        _banded("systolic_bp", obs.systolic_bp, _NEWS2_SBP, "mmHg"),
        _banded("heart_rate", obs.heart_rate, _NEWS2_HR, "/min"),
        acvpu,
        _banded("temperature_c", obs.temperature_c, _NEWS2_TEMP, "°C"),
    ]


def news2(obs: SepsisObservation) -> News2:
    """NEWS2 total and clinical risk: 0–4 low (low-medium when one parameter scores 3), 5–6 medium,
    >= 7 high. ``obs`` must already be at chart precision (:func:`at_chart_precision`)."""
    comps = news2_components(obs)
    missing = [c.parameter for c in comps if c.points is None]
    lower = sum(c.points or 0 for c in comps)
    if missing:
        return News2(total=None, risk=None, status="not computed", lower_bound=lower,
                                     components=comps, missing=missing)
    if lower >= 7:
        risk = "high"
    elif lower >= 5:
        risk = "medium"
    elif any(c.points == 3 for c in comps):
        risk = "low-medium"
    else:
        risk = "low"
    return News2(total=lower, risk=risk, status="computed", lower_bound=lower, components=comps,
                                 missing=[])


def _criteria_summary(comps: list[Component]) -> tuple[int | None, bool | None, int, list[str]]:
    """(total, positive (>= 2 met), met so far, missing) with three-valued logic for missing criteria."""
    met = sum(c.points or 0 for c in comps)
    missing = [c.parameter for c in comps if c.points is None]
    if not missing:
        return met, met >= 2, met, []
    positive = True if met >= 2 else (False if met + len(missing) < 2 else None)
    return None, positive, met, missing


def qsofa(obs: SepsisObservation) -> Qsofa:
    """qSOFA (Singer 2016): RR >= 22/min, altered mentation (GCS < 15; ACVPU other than A when GCS
    is missing), systolic BP <= 100 mmHg; positive when >= 2. A criterion without data is
    "not computed"; ``positive`` is still decided when the known criteria settle it."""
    comps = [
        not_computed("respiratory_rate", "not computed: respiratory_rate missing") if obs.respiratory_rate is None
        else scored("respiratory_rate", obs.respiratory_rate, int(obs.respiratory_rate >= 22), ">= 22 /min → 1"),
        _qsofa_mentation(obs),
        not_computed("systolic_bp", "not computed: systolic_bp missing") if obs.systolic_bp is None
        else scored("systolic_bp", obs.systolic_bp, int(obs.systolic_bp <= 100), "<= 100 mmHg → 1"),
    ]
    total, positive, met, missing = _criteria_summary(comps)
    return Qsofa(total=total, positive=positive, status="not computed" if missing else "computed",
                 lower_bound=met, components=comps, missing=missing)


def _qsofa_mentation(obs: SepsisObservation) -> Component:
    if obs.gcs is not None:
        return scored("gcs", obs.gcs, int(obs.gcs < 15), "altered mentation: GCS < 15 → 1")
    if obs.consciousness is not None:
        return scored("consciousness", obs.consciousness, int(obs.consciousness != "A"),
                       "altered mentation: ACVPU not A → 1 (GCS missing)")
    return not_computed("gcs", "not computed: gcs and consciousness missing")


def _either(name: str, checks: list[tuple[str, float | None, bool, str]]) -> Component:
    """A criterion met by any of several measurements; "not met" needs at least one measured."""
    known = [(param, value, hit, rule) for param, value, hit, rule in checks if value is not None]
    if not known:
        return not_computed(name, f"not computed: {', '.join(c[0] for c in checks)} missing")
    values = {param: value for param, value, _, _ in known}
    hits = [rule for _, _, hit, rule in known if hit]
    if hits:
        return scored(name, values, 1, " or ".join(hits) + " → 1")
    return scored(name, values, 0, "none of: " + "; ".join(rule for _, _, _, rule in known) + " → 0")


def sirs(obs: SepsisObservation) -> Sirs:
    """SIRS: temperature > 38 or < 36 °C; heart rate > 90; respiratory rate > 20 or PaCO2 < 32 mmHg;
    WBC > 12 or < 4 ×10⁹/L or bands > 10 %; positive when >= 2 criteria. A criterion with several
    measurements is judged on those recorded (at least one is needed)."""
    t, rr, wbc = obs.temperature_c, obs.respiratory_rate, obs.wbc
    comps = [
        _either("temperature", [("temperature_c", t, t is not None and (t > 38 or t < 36), "T > 38 or < 36 °C")]),
        _either("heart_rate", [("heart_rate", obs.heart_rate, obs.heart_rate is not None and obs.heart_rate > 90,
                                "HR > 90 /min")]),
        _either("respiration", [("respiratory_rate", rr, rr is not None and rr > 20, "RR > 20 /min"),
                                ("paco2", obs.paco2, obs.paco2 is not None and obs.paco2 < 32, "PaCO2 < 32 mmHg")]),
        _either("white_cells", [("wbc", wbc, wbc is not None and (wbc > 12 or wbc < 4), "WBC > 12 or < 4 ×10⁹/L"),
                                ("bands_percent", obs.bands_percent,
                                 obs.bands_percent is not None and obs.bands_percent > 10, "bands > 10 %")]),
    ]
    total, positive, met, missing = _criteria_summary(comps)
    return Sirs(count=total, positive=positive, status="not computed" if missing else "computed",
                lower_bound=met, components=comps, missing=missing)
