"""SOFA (Singer 2016, JAMA 315:801, Table 1), six organ systems of 0–4 points.

Conventions: laboratory bands are half-open from each lower limit (see :mod:`plugins.sepsis.scores`).
Renal: creatinine is required, except that urine < 200 ml/day alone gives the maximum (4); urine
output, when recorded, can only raise the creatinine score. Cardiovascular: ``vasopressors`` absent
or empty means no vasopressor infusion; MAP is required unless a vasopressor decides the score.
Respiration: P/F < 200 scores 3–4 only with respiratory support; unknown support at P/F < 200 is
"not computed".
"""
from __future__ import annotations

from plugins.sepsis.models import Component, SepsisObservation, Sofa
from plugins.sepsis.scores import not_computed, scored


def _below(value: float, bands: list[tuple[float, int, str]]) -> tuple[int, str]:
    for limit, points, label in bands:
        if value < limit:
            return points, label
    return 0, f">= {bands[-1][0]:g}"


def _from(value: float, bands: list[tuple[float, int, str]]) -> tuple[int, str]:
    for limit, points, label in bands:
        if value >= limit:
            return points, label
    return 0, f"< {bands[-1][0]:g}"


def respiration(obs: SepsisObservation) -> Component:
    pf, support = obs.pao2_fio2, obs.on_respiratory_support
    if pf is None:
        return not_computed("respiration", "not computed: pao2_fio2 missing")
    if pf >= 400:
        return scored("respiration", pf, 0, "PaO2/FiO2 >= 400 mmHg → 0")
    if pf >= 300:
        return scored("respiration", pf, 1, "PaO2/FiO2 < 400 → 1")
    if pf >= 200:
        return scored("respiration", pf, 2, "PaO2/FiO2 < 300 → 2")
    if support is None:
        return not_computed("respiration", "not computed: PaO2/FiO2 < 200 scores 3–4 only with respiratory "
                        "support; on_respiratory_support missing")
    if not support:
        return scored("respiration", pf, 2, "PaO2/FiO2 < 200 without respiratory support → 2")
    if pf >= 100:
        return scored("respiration", pf, 3, "PaO2/FiO2 < 200 with respiratory support → 3")
    return scored("respiration", pf, 4, "PaO2/FiO2 < 100 with respiratory support → 4")


_PLATELETS = [(20.0, 4, "< 20"), (50.0, 3, "< 50"), (100.0, 2, "< 100"), (150.0, 1, "< 150")]
_BILIRUBIN = [(12.0, 4, ">= 12.0"), (6.0, 3, "6.0–11.9"), (2.0, 2, "2.0–5.9"), (1.2, 1, "1.2–1.9")]
_CREATININE = [(5.0, 4, ">= 5.0"), (3.5, 3, "3.5–4.9"), (2.0, 2, "2.0–3.4"), (1.2, 1, "1.2–1.9")]


def coagulation(obs: SepsisObservation) -> Component:
    if obs.platelets is None:
        return not_computed("coagulation", "not computed: platelets missing")
    points, label = _below(obs.platelets, _PLATELETS)
    return scored("coagulation", obs.platelets, points, f"platelets {label} ×10³/µL → {points}")


def liver(obs: SepsisObservation) -> Component:
    if obs.bilirubin_mg_dl is None:
        return not_computed("liver", "not computed: bilirubin_mg_dl missing")
    points, label = _from(obs.bilirubin_mg_dl, _BILIRUBIN)
    return scored("liver", obs.bilirubin_mg_dl, points, f"bilirubin {label} mg/dL → {points}")


def _pressor_points(doses: dict[str, float]) -> tuple[int, str]:
    dop, dob = doses.get("dopamine", 0.0), doses.get("dobutamine", 0.0)
    catechol = max(doses.get("adrenaline", 0.0), doses.get("noradrenaline", 0.0))
    options = [(0, "")]
    if dob > 0:
        options.append((2, "dobutamine (any dose) → 2"))
    if 0 < dop <= 5:
        options.append((2, "dopamine <= 5 µg/kg/min → 2"))
    elif 5 < dop <= 15:
        options.append((3, "dopamine > 5 µg/kg/min → 3"))
    elif dop > 15:
        options.append((4, "dopamine > 15 µg/kg/min → 4"))
    if 0 < catechol <= 0.1:
        options.append((3, "adrenaline/noradrenaline <= 0.1 µg/kg/min → 3"))
    elif catechol > 0.1:
        options.append((4, "adrenaline/noradrenaline > 0.1 µg/kg/min → 4"))
    return max(options, key=lambda o: o[0])


def cardiovascular(obs: SepsisObservation) -> Component:
    doses = {k: v for k, v in (obs.vasopressors or {}).items() if v > 0}
    pressor, pressor_rule = _pressor_points(doses)
    value: dict[str, object] = {"map": obs.map, **doses}
    if pressor >= 2:
        return scored("cardiovascular", value, pressor, pressor_rule)
    if obs.map is None:
        return not_computed("cardiovascular", "not computed: map missing (and no vasopressor)")
    if obs.map < 70:
        return scored("cardiovascular", value, 1, "MAP < 70 mmHg → 1")
    return scored("cardiovascular", value, 0, "MAP >= 70 mmHg, no vasopressor → 0")


def cns(obs: SepsisObservation) -> Component:
    gcs = obs.gcs
    if gcs is None:
        return not_computed("cns", "not computed: gcs missing")
    if gcs == 15:
        return scored("cns", gcs, 0, "GCS 15 → 0")
    points, label = (1, "13–14") if gcs >= 13 else (2, "10–12") if gcs >= 10 else (3, "6–9") if gcs >= 6 \
        else (4, "< 6")
    return scored("cns", gcs, points, f"GCS {label} → {points}")


def renal(obs: SepsisObservation) -> Component:
    creat, urine = obs.creatinine_mg_dl, obs.urine_ml_day
    value = {"creatinine_mg_dl": creat, "urine_ml_day": urine}
    urine_points, urine_rule = (0, "")
    if urine is not None and urine < 200:
        urine_points, urine_rule = 4, "urine < 200 ml/day → 4"
    elif urine is not None and urine < 500:
        urine_points, urine_rule = 3, "urine < 500 ml/day → 3"
    if creat is None:
        if urine_points == 4:
            return scored("renal", value, 4, urine_rule)
        return not_computed("renal", "not computed: creatinine_mg_dl missing")
    points, label = _from(creat, _CREATININE)
    if urine_points > points:
        return scored("renal", value, urine_points, urine_rule)
    return scored("renal", value, points, f"creatinine {label} mg/dL → {points}")


def sofa(obs: SepsisObservation) -> Sofa:
    """SOFA total (0–24) when all six systems are computed; otherwise ``total`` None and
    ``lower_bound`` the sum of those computed."""
    comps = [respiration(obs), coagulation(obs), liver(obs), cardiovascular(obs), cns(obs), renal(obs)]
    missing = [c.parameter for c in comps if c.points is None]
    lower = sum(c.points or 0 for c in comps)
    return Sofa(total=None if missing else lower, status="not computed" if missing else "computed",
                lower_bound=lower, components=comps, missing=missing)
