"""Fleischner Society 2017 recommendations for incidental pulmonary nodules (MacMahon, Radiology 284:228).

For incidental nodules in adults aged 35 or more; NOT for lung-cancer screening (screening gets
Lung-RADS only), immunocompromised patients or patients with known cancer (the outputs state these
conditions; the header does not tell them). Whether a study is screening or incidental, and the
patient's risk (low / high), come per study from tag rules (:mod:`context`), not from a site switch;
the age from the DICOM header (PatientAge, else PatientBirthDate and StudyDate). An unknown age or
indication is stated in the text; an age below 35 or a screening study gets no recommendation.

Size: the average of long and short axis, rounded to the nearest whole millimetre (half up: 5.5 ->
6, 5.4 -> 5; Fleischner 2017, "measurements ... rounded to the nearest millimetre") BEFORE banding.
Bands: "< 6 mm" is <= 5 after rounding; "6-8 mm" is 6, 7 or 8; "> 8 mm" is 9 and above. So 5.6 mm is
6 mm (CT at 6-12 months) and 8.4 mm is 8 mm (still 6-8), 8.5 mm is 9 mm (> 8).
Management follows the most suspicious nodule: the largest solid nodule sets the solid text,
the largest subsolid nodule the subsolid text; both are given when both kinds are present.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from models.lung_nodules.lungrads import NoduleType

FLEISCHNER_MIN_AGE = 35


class Risk(enum.StrEnum):
    LOW = "low"
    HIGH = "high"
    UNKNOWN = "unknown"  # both texts are given


class Indication(enum.StrEnum):
    """Why the CT was made: Fleischner is for incidental nodules only, screening gets Lung-RADS only."""

    SCREENING = "screening"
    INCIDENTAL = "incidental"
    UNKNOWN = "unknown"  # the recommendation is given with its condition stated


def rounded_mm(mean_diameter_mm: float) -> int:
    """Fleischner size: the average diameter rounded to the nearest whole millimetre, half up."""
    return int(Decimal(repr(float(mean_diameter_mm))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def applicability(indication: Indication, age_years: int | None) -> tuple[bool, str, str]:
    """(applies, code, reason): not for a screening study or a patient younger than 35.

    *code* (at most 16 characters) and *reason* (at most 64) are what the SR states; neither holds the age.
    """
    if indication is Indication.SCREENING:
        return False, "FL-NA-SCREEN", "not applied: screening exam (Lung-RADS only)"
    if age_years is not None and age_years < FLEISCHNER_MIN_AGE:
        return False, "FL-NA-AGE", f"not applied: patient younger than {FLEISCHNER_MIN_AGE}"
    if age_years is None:
        return True, "FL-APPLIED-NOAGE", f"applied; patient age unknown (for adults >= {FLEISCHNER_MIN_AGE} only)"
    return True, "FL-APPLIED", "applied"


_SOLID = {
    ("single", "<6"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("single", "6-8"): ("CT at 6-12 months, then consider CT at 18-24 months.",
                        "CT at 6-12 months, then CT at 18-24 months."),
    ("single", ">8"): ("Consider CT at 3 months, PET/CT, or tissue sampling.",) * 2,
    ("multiple", "<6"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("multiple", "6-8"): ("CT at 3-6 months, then consider CT at 18-24 months.",
                          "CT at 3-6 months, then CT at 18-24 months."),
    ("multiple", ">8"): ("CT at 3-6 months, then consider CT at 18-24 months.",  # Table 1: as 6-8 mm, high
                         "CT at 3-6 months, then CT at 18-24 months."),              # risk without "consider"
}

_SUBSOLID = {
    ("ground-glass", "<6"): "No routine follow-up.",
    ("ground-glass", ">=6"): "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.",
    ("part-solid", "<6"): "No routine follow-up.",
    ("part-solid", ">=6"): ("CT at 3-6 months to confirm persistence. If unchanged and solid component remains "
                            "< 6 mm, annual CT should be performed for 5 years."),
    ("multiple", "<6"): "CT at 3-6 months. If stable, consider CT at 2 and 4 years.",
    ("multiple", ">=6"): "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s).",
}


def _solid_band(d: int) -> str:
    return "<6" if d < 6 else ("6-8" if d <= 8 else ">8")


def _size(d: float) -> str:
    return f"{d:.1f} mm (rounded {rounded_mm(d)} mm)"


def _solid_text(sizes: list[float], risk: Risk) -> str:
    key = ("single" if len(sizes) == 1 else "multiple", _solid_band(rounded_mm(max(sizes))))
    low, high = _SOLID[key]
    head = (f"Solid nodules, largest {_size(max(sizes))}: " if len(sizes) > 1
            else f"Solid nodule {_size(max(sizes))}: ")
    if risk is Risk.LOW or low == high:
        return head + low
    if risk is Risk.HIGH:
        return head + high
    return head + f"Low risk: {low} High risk: {high}"


def _subsolid_text(nodules: list[tuple[NoduleType, float]]) -> str:
    largest_type, largest = max(nodules, key=lambda n: n[1])
    band = "<6" if rounded_mm(largest) < 6 else ">=6"
    kind = "multiple" if len(nodules) > 1 else str(largest_type)
    head = (f"Subsolid nodules, largest {_size(largest)}: " if len(nodules) > 1
            else f"{str(largest_type).capitalize()} nodule {_size(largest)}: ")
    return head + _SUBSOLID[(kind, band)]


def fleischner_recommendation(nodules: Sequence[tuple[NoduleType, float]], risk: Risk = Risk.UNKNOWN,
                              age_years: int | None = None, indication: Indication = Indication.UNKNOWN) -> str:
    """Recommendation text for the nodules of one exam, each given as (type, mean diameter mm).

    A screening study or an age below 35 gives a text saying the guideline is not applied; an unknown
    age or indication is stated after the recommendation. The text never holds the patient's age.
    Never raises.
    """
    prefix = "Fleischner 2017 (incidental nodules, adults >= 35, not screening): "
    applies, _, reason = applicability(indication, age_years)
    if not applies:
        return prefix + reason + "."
    if not nodules:
        text = prefix + "no nodule, no follow-up for nodules."
    else:
        solid = [d for t, d in nodules if t is NoduleType.SOLID]
        subsolid = [(t, d) for t, d in nodules if t is not NoduleType.SOLID]
        parts = []
        if solid:
            parts.append(_solid_text(solid, risk))
        if subsolid:
            parts.append(_subsolid_text(subsolid))
        text = prefix + " ".join(parts)
    if age_years is None:
        text += f" Patient age not in the DICOM header: for adults >= {FLEISCHNER_MIN_AGE} only."
    if indication is Indication.UNKNOWN:
        text += " Indication not known: for incidental findings only, not for screening."
    return text
