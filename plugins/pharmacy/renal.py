"""Cockcroft–Gault creatinine clearance (ml/min) and the renal bands.

CrCl = (140 − age) × weight / (72 × creatinine mg/dL), × 0.85 for women;
with creatinine in µmol/L: (140 − age) × weight × F / creatinine, F = 1.23 men, 1.04 women.
Weight: actual body weight, except in obesity (BMI >= 30 kg/m², needs height) where the ADJUSTED
body weight is used: IBW + 0.4 × (actual − IBW), IBW by Devine (50 kg men, 45.5 kg women,
+ 2.3 kg per inch above 5 ft). Without height the actual weight is used and the output says so.
Adults only (age >= 18); sex must be female or male (the formula has no other factor).
Bands: severe < 30, moderate 30–< 50, mild 50–< 80, normal >= 80 ml/min, applied to the value
reported (rounded to 0.1 ml/min).

Minimum-creatinine convention (frail elderly): in an old patient with little muscle mass a low
serum creatinine does not mean a high clearance, and Cockcroft-Gault divides by it (90 years,
50 kg, 0.3 mg/dL would give a "normal" 98 ml/min for a woman). When the knowledge base's manifest
sets ``creatinine_floor`` (shipped: age >= 65, 0.8 mg/dL = 70.7 µmol/L), a creatinine below the
floor is raised to it before the formula and the output says so (``creatinine_basis``). Practice
varies (0.8 and 1.0 mg/dL are both in use, and rounding up can under-estimate the clearance); no
guideline fixes the value, so it is a reviewed setting of the knowledge base, not a constant here.
"""
from __future__ import annotations

from plugins.pharmacy.kb import CreatinineFloor
from plugins.pharmacy.models import Patient, RenalFunction

MG_DL_FORMULA = "Cockcroft-Gault (140 - age) x weight / (72 x creatinine mg/dL) [x 0.85 female]"
UMOL_FORMULA = "Cockcroft-Gault (140 - age) x weight x F / creatinine umol/L, F = 1.23 male, 1.04 female"


def ideal_body_weight_kg(sex: str, height_cm: float) -> float:
    """Devine: 50 kg (men) or 45.5 kg (women) + 2.3 kg per inch over 60 inches."""
    return (50.0 if sex == "male" else 45.5) + 2.3 * (height_cm / 2.54 - 60.0)


def dosing_weight(sex: str, weight_kg: float, height_cm: float | None) -> tuple[float, str]:
    """(weight used, basis): adjusted body weight when BMI >= 30, else actual."""
    if height_cm is None:
        return weight_kg, "actual (height missing: obesity adjustment not possible)"
    bmi = weight_kg / (height_cm / 100.0) ** 2
    if bmi < 30:
        return weight_kg, f"actual (BMI {bmi:.1f})"
    ibw = ideal_body_weight_kg(sex, height_cm)
    return ibw + 0.4 * (weight_kg - ibw), f"adjusted (BMI {bmi:.1f} >= 30: IBW {ibw:.1f} + 0.4 x excess)"


def band(crcl: float) -> str:
    if crcl < 30:
        return "severe (< 30)"
    if crcl < 50:
        return "moderate (30-50)"
    if crcl < 80:
        return "mild (50-80)"
    return "normal (>= 80)"


def floored_creatinine(patient: Patient, floor: CreatinineFloor | None) -> tuple[float, str, str | None]:
    """(creatinine used, unit, why it differs from the measured value or None) for a patient with
    age and creatinine; raised to *floor* from its minimum age."""
    umol = patient.creatinine_umol_l is not None
    measured = float(patient.creatinine_umol_l if umol else patient.creatinine_mg_dl)  # type: ignore[arg-type]
    unit = "umol/L" if umol else "mg/dL"
    if floor is None or patient.age is None or patient.age < floor.min_age:
        return measured, unit, None
    minimum = floor.umol_l if umol else floor.mg_dl
    if measured >= minimum:
        return measured, unit, None
    return minimum, unit, (f"measured creatinine {measured:g} {unit} raised to {minimum:.3g} {unit} "
                           f"(minimum-creatinine convention from age {floor.min_age}: {floor.reason})")


def cockcroft_gault(patient: Patient, floor: CreatinineFloor | None = None) -> RenalFunction:
    """Creatinine clearance, or "not computed" naming what is missing. *floor*: the knowledge
    base's minimum-creatinine convention (None: the measured creatinine is used as it is)."""
    formula = UMOL_FORMULA if patient.creatinine_umol_l is not None else MG_DL_FORMULA
    missing = [name for name, value in (("age", patient.age), ("sex", patient.sex), ("weight_kg", patient.weight_kg),
                                        ("creatinine", patient.creatinine_mg_dl or patient.creatinine_umol_l))
               if value is None]
    reason = None
    if missing:
        reason = f"missing {', '.join(missing)}"
    elif patient.sex not in ("female", "male"):
        reason = f"sex {patient.sex!r}: the formula is defined for female or male"
    elif patient.age is not None and patient.age < 18:
        reason = "age < 18: Cockcroft-Gault is for adults (use a paediatric formula)"
    if reason:
        return RenalFunction(status="not computed", creatinine_clearance_ml_min=None, band=None, formula=formula,
                             weight_kg_used=None, weight_basis=None, reason=reason)
    sex, age = str(patient.sex), float(patient.age)  # type: ignore[arg-type]
    weight, basis = dosing_weight(sex, float(patient.weight_kg), patient.height_cm)  # type: ignore[arg-type]
    creatinine, unit, creatinine_basis = floored_creatinine(patient, floor)
    if unit == "umol/L":
        crcl = (140.0 - age) * weight * (1.23 if sex == "male" else 1.04) / creatinine
    else:
        crcl = (140.0 - age) * weight / (72.0 * creatinine)
        crcl *= 0.85 if sex == "female" else 1.0
    crcl = round(crcl, 1)  # the band and every renal rule use the value reported
    return RenalFunction(status="computed", creatinine_clearance_ml_min=crcl, band=band(crcl),  # type: ignore[arg-type]
                         formula=formula, weight_kg_used=round(weight, 1), weight_basis=basis,
                         creatinine_basis=creatinine_basis)
