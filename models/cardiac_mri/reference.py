"""LV and RV reference ranges by sex (Kawel-Boehm 2015, J Cardiovasc Magn Reson 17:29).

LV (as in REFERENCE.md): EDVi, ESVi, EF, mass index. RV (SSFP, adults; the Hudsmith 2005 cohort,
J Cardiovasc Magn Reson 7:775, 63 men and 45 women, one of the SSFP studies Kawel-Boehm 2015
tabulates): EDV men 190 ± 33 ml, women 148 ± 35 ml; ESV men 78 ± 20 ml, women 56 ± 18 ml;
EF men 59 ± 6 %, women 63 ± 5 %. So an RV EF below 47 % (men) or 53 % (women) is flagged low.
The RV is flagged on absolute volumes (the cohort's values are not BSA-indexed here).

Convention: the normal range is mean ± 2 SD, limits inclusive (a value equal to a
limit is normal). A value below the lower limit is flagged ``"low"``, above the upper
limit ``"high"``. No flag is given when the sex is not M or F, or when an indexed
value cannot be computed (no height/weight, hence no BSA).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from models.errors import ModelError


class Flag(str, Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass(frozen=True)
class ReferenceRange:
    mean: float
    sd: float
    unit: str

    @property
    def low(self) -> float:
        return self.mean - 2 * self.sd

    @property
    def high(self) -> float:
        return self.mean + 2 * self.sd

    def flag(self, value: float) -> Flag:
        if value < self.low:
            return Flag.LOW
        if value > self.high:
            return Flag.HIGH
        return Flag.NORMAL


#: measure -> sex -> range. LV: EDVi, ESVi (ml/m²), EF (%), LVMi (g/m²); RV: RVEDV, RVESV (ml), RVEF (%).
RANGES: dict[str, dict[str, ReferenceRange]] = {
    "EDVi": {"M": ReferenceRange(81, 12, "ml/m2"), "F": ReferenceRange(76, 10, "ml/m2")},
    "ESVi": {"M": ReferenceRange(26, 6, "ml/m2"), "F": ReferenceRange(24, 5, "ml/m2")},
    "EF": {"M": ReferenceRange(67, 5, "%"), "F": ReferenceRange(67, 5, "%")},
    "LVMi": {"M": ReferenceRange(67, 9, "g/m2"), "F": ReferenceRange(61, 10, "g/m2")},
    "RVEDV": {"M": ReferenceRange(190, 33, "ml"), "F": ReferenceRange(148, 35, "ml")},
    "RVESV": {"M": ReferenceRange(78, 20, "ml"), "F": ReferenceRange(56, 18, "ml")},
    "RVEF": {"M": ReferenceRange(59, 6, "%"), "F": ReferenceRange(63, 5, "%")},
}
#: where each range comes from, for the outputs' "reference" parameter
SOURCES: dict[str, str] = {
    **{m: "Kawel-Boehm 2015 (JCMR 17:29), LV, mean +/- 2 SD" for m in ("EDVi", "ESVi", "EF", "LVMi")},
    **{m: "Hudsmith 2005 (JCMR 7:775) SSFP cohort as tabulated in Kawel-Boehm 2015, RV, mean +/- 2 SD"
       for m in ("RVEDV", "RVESV", "RVEF")},
}


def reference_range(measure: str, sex: str | None) -> ReferenceRange | None:
    """The range of *measure* for *sex* ("M"/"F"; anything else -> None).

    Raises:
        ModelError: unknown measure.
    """
    if measure not in RANGES:
        raise ModelError(f"reference range: unknown measure {measure!r} (known: {', '.join(RANGES)})")
    return RANGES[measure].get((sex or "").upper())


def flag(measure: str, value: float | None, sex: str | None) -> Flag | None:
    """Flag of *value* against the sex-specific range; None when no range or no value applies.

    Raises:
        ModelError: unknown measure.
    """
    ref = reference_range(measure, sex)
    if ref is None or value is None:
        return None
    return ref.flag(value)
