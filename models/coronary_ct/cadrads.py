"""CAD-RADS 2.0 (Cury 2022, JCCT 16:536) stenosis category and plaque burden, as pure functions.

Stenosis category from the maximal percent diameter stenosis of each vessel:
0 -> 0; 1-24 % -> 1; 25-49 % -> 2; 50-69 % -> 3; 70-99 % -> 4A; 100 % (occlusion) -> 5;
4B when the left main has >= 50 % or three vessels (LAD, LCx, RCA territories) have >= 70 %.
Stenoses are rounded half up to an integer percent before categorising (24.5 % -> 25 -> 2).
Category 5 outranks 4B; 4B outranks 4A.

Plaque burden from the Agatston score: 0 -> none (P0 is not written); 1-100 -> P1;
101-300 -> P2; 301-999 -> P3; >= 1000 -> P4. The rule at exactly 1000: P4 (the
band ">= 1000" is closed at 1000, as REFERENCE.md writes it). The score is rounded
half up first (999.5 -> 1000 -> P4, 100.4 -> 100 -> P1); a score in (0, 0.5) is P1.
"""
from __future__ import annotations

from collections.abc import Mapping

from models.coronary_ct.calcium import Vessel, round_half_up
from models.errors import ModelError


def percent_diameter_stenosis(minimal_lumen_mm: float, proximal_reference_mm: float,
                              distal_reference_mm: float | None = None) -> float:
    """Percent diameter stenosis = (1 - minimal lumen diameter / reference diameter) x 100, the reference
    being the mean of the proximal and distal reference diameters (the proximal one alone when no distal).
    A lumen wider than the reference gives 0 %.

    Raises:
        ModelError: a reference diameter <= 0 or a negative lumen.
    """
    refs = [proximal_reference_mm] + ([distal_reference_mm] if distal_reference_mm is not None else [])
    if min(refs) <= 0 or minimal_lumen_mm < 0:
        raise ModelError(f"stenosis: lumen {minimal_lumen_mm} mm must be >= 0 and references {refs} mm > 0")
    reference = sum(refs) / len(refs)
    return max(0.0, (1.0 - minimal_lumen_mm / reference) * 100.0)


def stenosis_grade(percent: float) -> str:
    """CAD-RADS 2.0 category of one stenosis: "0", "1", "2", "3", "4A" or "5".

    Raises:
        ModelError: percent outside 0-100.
    """
    if not 0 <= percent <= 100:
        raise ModelError(f"CAD-RADS: stenosis {percent} % outside 0-100")
    p = round_half_up(percent)
    if p == 0:
        return "0"
    if p < 25:
        return "1"
    if p < 50:
        return "2"
    if p < 70:
        return "3"
    if p < 100:
        return "4A"
    return "5"


_ORDER = ("0", "1", "2", "3", "4A", "4B", "5")


def cad_rads(max_stenosis_pct: Mapping[Vessel, float]) -> str:
    """Patient-level CAD-RADS 2.0 category from the maximal stenosis per vessel (LM, LAD, LCx, RCA).

    Vessels not in the mapping count as 0 %.

    Raises:
        ModelError: a stenosis outside 0-100, or a non-coronary key.
    """
    if Vessel.NONE in max_stenosis_pct:
        raise ModelError("CAD-RADS: 'not coronary' is not a vessel")
    grades = {v: stenosis_grade(p) for v, p in max_stenosis_pct.items()}
    worst = max(grades.values(), key=_ORDER.index, default="0")
    if worst == "5":
        return "5"
    lm = round_half_up(max_stenosis_pct.get(Vessel.LM, 0.0))
    severe = sum(1 for v in (Vessel.LAD, Vessel.LCX, Vessel.RCA) if round_half_up(max_stenosis_pct.get(v, 0.0)) >= 70)
    if lm >= 50 or severe >= 3:
        return "4B"
    return worst


def plaque_burden(agatston: float) -> str | None:
    """CAD-RADS 2.0 plaque-burden modifier P1-P4 from the CAC score; None for a score of 0.

    Raises:
        ModelError: negative score.
    """
    if agatston < 0:
        raise ModelError(f"plaque burden: Agatston {agatston} must be >= 0")
    if agatston == 0:
        return None
    s = round_half_up(agatston)
    if s <= 100:
        return "P1"
    if s <= 300:
        return "P2"
    if s < 1000:
        return "P3"
    return "P4"


def report_string(category: str, burden: str | None) -> str:
    """E.g. ``"CAD-RADS 3/P2"``; burden is omitted for category 0 and when None."""
    if category not in _ORDER:
        raise ModelError(f"CAD-RADS: unknown category {category!r}")
    if category == "0" or burden is None:
        return f"CAD-RADS {category}"
    return f"CAD-RADS {category}/{burden}"
