"""Fleischner Society 2017 recommendations for incidental pulmonary nodules (MacMahon, Radiology 284:228).

For incidental nodules in adults aged 35 or more; NOT for lung-cancer screening (use Lung-RADS),
immunocompromised patients or patients with known cancer. Size bands use the rounded mean
diameter: "< 6 mm" is < 6.0; "6-8 mm" is 6.0 to 8.0 inclusive; "> 8 mm" is above 8.0.
Management follows the most suspicious nodule: the largest solid nodule sets the solid text,
the largest subsolid nodule the subsolid text; both are given when both kinds are present.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence

from models.lung_nodules.lungrads import NoduleType

FLEISCHNER_MIN_AGE = 35


class Risk(enum.StrEnum):
    LOW = "low"
    HIGH = "high"
    UNKNOWN = "unknown"  # both texts are given


_SOLID = {
    ("single", "<6"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("single", "6-8"): ("CT at 6-12 months, then consider CT at 18-24 months.",
                        "CT at 6-12 months, then CT at 18-24 months."),
    ("single", ">8"): ("Consider CT at 3 months, PET/CT, or tissue sampling.",) * 2,
    ("multiple", "<6"): ("No routine follow-up.", "Optional CT at 12 months."),
    ("multiple", "6-8"): ("CT at 3-6 months, then consider CT at 18-24 months.",
                          "CT at 3-6 months, then CT at 18-24 months."),
    ("multiple", ">8"): ("CT at 3-6 months, then consider CT at 18-24 months.",) * 2,
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


def _solid_band(d: float) -> str:
    return "<6" if d < 6.0 else ("6-8" if d <= 8.0 else ">8")


def _solid_text(sizes: list[float], risk: Risk) -> str:
    key = ("single" if len(sizes) == 1 else "multiple", _solid_band(max(sizes)))
    low, high = _SOLID[key]
    head = f"Solid nodule{'s' if len(sizes) > 1 else ''}, largest {max(sizes):.1f} mm: "
    if risk is Risk.LOW or low == high:
        return head + low
    if risk is Risk.HIGH:
        return head + high
    return head + f"Low risk: {low} High risk: {high}"


def _subsolid_text(nodules: list[tuple[NoduleType, float]]) -> str:
    largest_type, largest = max(nodules, key=lambda n: n[1])
    band = "<6" if largest < 6.0 else ">=6"
    kind = "multiple" if len(nodules) > 1 else str(largest_type)
    head = (f"Subsolid nodules, largest {largest:.1f} mm: " if len(nodules) > 1
            else f"{str(largest_type).capitalize()} nodule {largest:.1f} mm: ")
    return head + _SUBSOLID[(kind, band)]


def fleischner_recommendation(nodules: Sequence[tuple[NoduleType, float]], risk: Risk = Risk.UNKNOWN,
                              age_years: int | None = None) -> str:
    """Recommendation text for the nodules of one exam, each given as (type, mean diameter mm).

    *age_years* below 35 gives a text saying the guideline does not apply. Never raises.
    """
    prefix = "Fleischner 2017 (incidental nodules, adults >= 35, not screening): "
    if age_years is not None and age_years < FLEISCHNER_MIN_AGE:
        return prefix + f"does not apply (patient aged {age_years} < {FLEISCHNER_MIN_AGE})."
    if not nodules:
        return prefix + "no nodule, no follow-up for nodules."
    solid = [d for t, d in nodules if t is NoduleType.SOLID]
    subsolid = [(t, d) for t, d in nodules if t is not NoduleType.SOLID]
    parts = []
    if solid:
        parts.append(_solid_text(solid, risk))
    if subsolid:
        parts.append(_subsolid_text(subsolid))
    return prefix + " ".join(parts)
