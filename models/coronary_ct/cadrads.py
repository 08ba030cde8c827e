"""CAD-RADS 2.0 (Cury 2022, JCCT 16:536) stenosis category and plaque burden, as pure functions.

Stenosis category from the maximal percent diameter stenosis of each vessel:
0 -> 0 (no plaque and no stenosis); 1-24 % -> 1; 25-49 % -> 2; 50-69 % -> 3; 70-99 % -> 4A;
100 % (total occlusion) -> 5; 4B when the left main has >= 50 % or three vessels (LAD, LCx, RCA
territories) have >= 70 %. Category 5 outranks 4B; 4B outranks 4A.

Conventions (Cury 2022 and REFERENCE.md):
- Stenoses are rounded half up to an integer percent before categorising (24.5 % -> 25 -> 2),
  but never into 5: only a total occlusion (exactly 100 %) is 5; a sub-total 99.5 % is 4A.
- CAD-RADS 0 means no plaque AND no stenosis. Plaque with 0 % stenosis is 1: a stenosis > 0 %
  (it implies plaque, e.g. 0.4 %), plaque seen on the CTA, or coronary calcium (Agatston > 0)
  make a 0 % patient 1, never 0.
- Modifiers (Cury 2022, "Modifiers"): N non-diagnostic (obstructive stenosis cannot be excluded
  in the non-diagnostic segments), HRP high-risk plaque (two or more high-risk features), I
  ischemia (I+, I-, I± from CT-FFR or CT perfusion), S stent, G bypass graft, E exceptions
  (non-atherosclerotic causes such as dissection, anomalous origin, fistula, vasculitis). They are
  written after the category and the plaque burden, separated by "/", in the order
  P, HRP, I, S, G, E, N: e.g. ``CAD-RADS 4A/P2/HRP/I+/S``.

Plaque burden from the Agatston score: 0 -> none (P0 is not written); 1-100 -> P1;
101-300 -> P2; 301-999 -> P3; >= 1000 -> P4. The rule at exactly 1000: P4. Cury 2022
writes P3 as 301-999 and P4 as "> 1000", which leaves 1000 itself in no band; we close P4 at
1000 (">= 1000", as REFERENCE.md writes it), so every integer score has one band. The score is
rounded half up first (999.5 -> 1000 -> P4, 100.4 -> 100 -> P1); a score in (0, 0.5) is P1.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

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

    "5" only for a total occlusion (exactly 100 %): a rounded 99.5 % stays "4A". A stenosis
    above 0 % that rounds to 0 is plaque with no stenosis: "1".

    Raises:
        ModelError: percent outside 0-100.
    """
    if not 0 <= percent <= 100:
        raise ModelError(f"CAD-RADS: stenosis {percent} % outside 0-100")
    if percent == 100:
        return "5"
    p = min(round_half_up(percent), 99)  # a sub-total stenosis is never rounded into an occlusion
    if p == 0:
        return "1" if percent > 0 else "0"
    if p < 25:
        return "1"
    if p < 50:
        return "2"
    if p < 70:
        return "3"
    return "4A"


_ORDER = ("0", "1", "2", "3", "4A", "4B", "5")


def cad_rads(max_stenosis_pct: Mapping[Vessel, float], plaque_present: bool = False) -> str:
    """Patient-level CAD-RADS 2.0 category from the maximal stenosis per vessel (LM, LAD, LCx, RCA).

    Vessels not in the mapping count as 0 %. *plaque_present*: plaque was seen (or calcium scored)
    somewhere; with no stenosis that is 1, not 0.

    Raises:
        ModelError: a stenosis outside 0-100, or a non-coronary key.
    """
    if Vessel.NONE in max_stenosis_pct:
        raise ModelError("CAD-RADS: 'not coronary' is not a vessel")
    grades = {v: stenosis_grade(p) for v, p in max_stenosis_pct.items()}
    worst = max(grades.values(), key=_ORDER.index, default="0")
    if worst == "0" and plaque_present:
        return "1"
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


class Ischemia(str, Enum):
    """CAD-RADS 2.0 ischemia modifier from CT-FFR or CT perfusion."""

    POSITIVE = "I+"
    NEGATIVE = "I-"
    BORDERLINE = "I±"


@dataclass(frozen=True)
class CadRadsInput:
    """What a CTA reader (or a stenosis tool) found, per patient.

    *max_stenosis_pct*: maximal percent diameter stenosis per vessel; *plaque_present*: any plaque
    seen; *agatston*: the CAC score when one was measured (> 0 counts as plaque, and gives P1-P4);
    *non_diagnostic* (N), *high_risk_plaque* (HRP: two or more high-risk features), *ischemia* (I),
    *stent* (S), *graft* (G), *exception* (E): the CAD-RADS 2.0 modifiers.
    """

    max_stenosis_pct: Mapping[Vessel, float]
    plaque_present: bool = False
    agatston: float | None = None
    non_diagnostic: bool = False
    high_risk_plaque: bool = False
    ischemia: Ischemia | None = None
    stent: bool = False
    graft: bool = False
    exception: bool = False


@dataclass(frozen=True)
class CadRadsResult:
    """Category, plaque burden, modifiers (in reporting order) and why the category is what it is."""

    category: str
    burden: str | None
    modifiers: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def report(self) -> str:
        """E.g. ``"CAD-RADS 4A/P2/HRP/I+/S"``; no burden for category 0."""
        parts = [self.category]
        if self.burden is not None and self.category != "0":
            parts.append(self.burden)
        return "CAD-RADS " + "/".join(parts + list(self.modifiers))


def assess(found: CadRadsInput) -> CadRadsResult:
    """CAD-RADS 2.0 category, plaque burden (from the CAC score) and modifiers of one patient.

    Raises:
        ModelError: a stenosis outside 0-100, a non-coronary key, or a negative CAC score.
    """
    calcium = found.agatston is not None and found.agatston > 0
    plaque = found.plaque_present or calcium
    category = cad_rads(found.max_stenosis_pct, plaque_present=plaque)
    burden = plaque_burden(found.agatston) if found.agatston is not None else None
    reasons = []
    if category == "1" and all(stenosis_grade(p) == "0" for p in found.max_stenosis_pct.values()):
        reasons.append("1: plaque with no stenosis" + (" (coronary calcium present)" if calcium else ""))
    if category == "0":
        reasons.append("0: no plaque and no stenosis")
    flags = ((found.high_risk_plaque, "HRP"), (found.ischemia is not None, found.ischemia.value if found.ischemia else ""),
             (found.stent, "S"), (found.graft, "G"), (found.exception, "E"), (found.non_diagnostic, "N"))
    modifiers = tuple(code for on, code in flags if on)
    if found.non_diagnostic:
        reasons.append("N: non-diagnostic segments; obstructive stenosis cannot be excluded there")
    return CadRadsResult(category, None if category == "0" else burden, modifiers, tuple(reasons))
