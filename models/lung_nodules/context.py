"""Per-study context of the lung rules: indication and Fleischner risk from tag rules, age from the header.

Configuration (``[pipelines.lung_nodules]``)::

    indication = "unknown"          # when no rule says: screening | incidental | unknown
    fleischner_risk = "unknown"     # when no rule says: low | high | unknown (both texts)
    [[pipelines.lung_nodules.rules]]
    match = { RequestedProcedureDescription = "(?i)screening|LDCT" }   # as routes.match
    indication = "screening"
    [[pipelines.lung_nodules.rules]]
    match = { SmokingStatus = "^YES$" }
    fleischner_risk = "high"

Each rule is a tag rule (``match``, the syntax of ``routes.match``: DICOM keyword -> regex or
``[min, max]``) on the routed series' header, with the setting(s) it gives. For each setting the
first matching rule that gives it wins; without one the default above applies. A rule with the same
``match`` as a route flags that route's studies. An empty ``match`` matches every study.

Patient age: PatientAge (``nnnY``, ``nnnM``, ``nnnW``, ``nnnD``), else the full years between
PatientBirthDate and StudyDate; None when neither gives one. The age is used, never logged or shown.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imaging.errors import RuleError
from imaging.rules import MatchRules
from models.errors import ModelError
from models.lung_nodules.fleischner import Indication, Risk

_AGE_RE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0, "Y": 365.25}
_RULE_KEYS = {"match", "indication", "fleischner_risk"}


@dataclass(frozen=True)
class ContextRule:
    """One tag rule: the studies it matches get its indication and/or risk (None: not set by this rule)."""

    match: MatchRules
    indication: Indication | None = None
    risk: Risk | None = None


@dataclass(frozen=True)
class StudyContext:
    """What the rules need to know about the patient and the study."""

    indication: Indication = Indication.UNKNOWN
    risk: Risk = Risk.UNKNOWN
    age_years: int | None = None


def parse_rules(raw: Any, where: str = "pipelines.lung_nodules.rules") -> tuple[ContextRule, ...]:
    """Validate ``[[pipelines.lung_nodules.rules]]``.

    Raises:
        ModelError: naming the rule (``…rules[i].key``) and what is wrong.
    """
    if not isinstance(raw, (list, tuple)):
        raise ModelError(f"{where}: expected a list of tables ([[{where}]])")
    rules = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ModelError(f"{at}: expected a table")
        unknown = set(item) - _RULE_KEYS
        if unknown:
            raise ModelError(f"{at}: unknown keys {sorted(unknown)} (known: {sorted(_RULE_KEYS)})")
        if "indication" not in item and "fleischner_risk" not in item:
            raise ModelError(f"{at}: gives neither indication nor fleischner_risk")
        try:
            match = MatchRules.parse(item.get("match", {}))
        except (RuleError, AttributeError) as exc:
            raise ModelError(f"{at}.match: {exc}") from None
        rules.append(ContextRule(match, _enum(Indication, item.get("indication"), f"{at}.indication"),
                                 _enum(Risk, item.get("fleischner_risk"), f"{at}.fleischner_risk")))
    return tuple(rules)


def _enum(kind: type[Indication] | type[Risk], value: Any, at: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ModelError(f"{at}: {value!r} is not one of {[v.value for v in kind]}") from None


def patient_age_years(header: Any) -> int | None:
    """Age in full years from PatientAge, else PatientBirthDate and StudyDate; None when unknown."""
    age = str(header.get("PatientAge", "") or "").strip().upper()
    found = _AGE_RE.match(age)
    if found:
        return int(int(found.group(1)) * _DAYS_PER[found.group(2)] // 365.25)
    birth, study = str(header.get("PatientBirthDate", "") or ""), str(header.get("StudyDate", "") or "")
    try:
        b = dt.datetime.strptime(birth.strip(), "%Y%m%d").date()
        s = dt.datetime.strptime(study.strip(), "%Y%m%d").date()
    except ValueError:
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return years if years >= 0 else None


def study_context(header: Any, rules: Sequence[ContextRule], indication: Indication = Indication.UNKNOWN,
                  risk: Risk = Risk.UNKNOWN) -> StudyContext:
    """The context of the study whose (routed series') *header* is given; defaults where no rule says."""
    found_indication = next((r.indication for r in rules if r.indication is not None and r.match.matches(header)),
                            indication)
    found_risk = next((r.risk for r in rules if r.risk is not None and r.match.matches(header)), risk)
    return StudyContext(found_indication, found_risk, patient_age_years(header))
