"""Selection rules on DICOM attributes: the shape of ``routes.match`` in the configuration.

A rule maps a DICOM keyword to either a regular expression (for text values;
``re.search``, multi-valued attributes joined with a backslash) or a
``[min, max]`` inclusive numeric range. An absent attribute never matches.
No ``eval``: only these two forms exist.

Besides DICOM keywords, a rule may use the derived keyword ``Orientation``
(a regex over ``AXIAL``, ``CORONAL``, ``SAGITTAL``, ``OBLIQUE``), computed
from Image Orientation (Patient) (or the shared functional groups of an
enhanced instance) when the attributes do not carry it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.multival import MultiValue

from imaging.errors import GeometryError, RuleError
from imaging.geometry import orientation_label

_NUMERIC_VRS = {"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"}
#: Keywords that are not DICOM attributes but are derived from them (regex rules only).
DERIVED_KEYWORDS = frozenset({"Orientation"})


def derived_orientation(attributes: Any) -> str | None:
    """``AXIAL``/``CORONAL``/``SAGITTAL``/``OBLIQUE`` of a dataset-like object, None without an orientation."""
    getter = getattr(attributes, "get", None)
    if getter is None:
        return None
    iop = getter("ImageOrientationPatient")
    if iop is None:
        shared = getter("SharedFunctionalGroupsSequence")
        try:
            iop = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
        except (AttributeError, IndexError, TypeError):
            return None
    if hasattr(iop, "value") and not isinstance(iop, (str, bytes, list, tuple, MultiValue)):
        iop = iop.value
    try:
        return orientation_label([float(v) for v in iop])
    except (GeometryError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Condition:
    keyword: str
    pattern: re.Pattern[str] | None = None
    low: float | None = None
    high: float | None = None

    def matches(self, value: Any) -> bool:
        if value is None or value == "":
            return False
        if self.pattern is not None:
            if isinstance(value, (list, tuple, MultiValue)):
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            return self.pattern.search(text) is not None
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            return False
        if self.low is None or self.high is None:
            return False
        return all(self.low <= n <= self.high for n in numbers)

    @property
    def rule(self) -> str:
        """The condition as written: the regular expression, or ``[min, max]``."""
        if self.pattern is not None:
            return self.pattern.pattern
        return f"[{self.low:g}, {self.high:g}]"

    def explain(self, value: Any) -> ConditionResult:
        """Whether *value* passes, and in words why not (absent, no match, not a number, out of range)."""
        matched = self.matches(value)
        shown = _text(value)
        if matched:
            reason = "matches" if self.pattern is not None else "within range"
        elif value is None or value == "":
            reason = "absent"
        elif self.pattern is not None:
            reason = "does not match"
        else:
            values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
            try:
                [float(v) for v in values]
            except (TypeError, ValueError):
                reason = "not a number"
            else:
                reason = "out of range"
        return ConditionResult(self.keyword, self.rule, matched, reason, shown)


def _text(value: Any) -> str | None:
    """A value as a condition reads it: multi-valued joined with a backslash; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class ConditionResult:
    """One condition's outcome on one header (:meth:`MatchRules.explain`).

    *reason*: ``matches``/``within range`` when *matched*, else ``absent``, ``does not match``,
    ``not a number`` or ``out of range``. *value* is the value compared as text (None: absent); it may
    be patient data when a rule names such an attribute.
    """

    keyword: str
    rule: str
    matched: bool
    reason: str
    value: str | None


@dataclass(frozen=True)
class MatchRules:
    """All conditions must hold (logical AND). No condition matches everything."""

    conditions: tuple[Condition, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> MatchRules:
        """Validate and compile a ``{keyword: regex | [min, max]}`` mapping.

        Raises:
            RuleError: naming the keyword and what is wrong with it.
        """
        conditions = []
        for keyword, spec in raw.items():
            if keyword in DERIVED_KEYWORDS:
                if not isinstance(spec, str):
                    raise RuleError(f"{keyword}: a derived keyword takes a regex string, got {spec!r}")
                try:
                    conditions.append(Condition(keyword, pattern=re.compile(spec)))
                except re.error as exc:
                    raise RuleError(f"{keyword}: invalid regular expression {spec!r}: {exc}") from exc
                continue
            if keyword not in keyword_dict:
                raise RuleError(f"{keyword!r} is not a DICOM keyword")
            if isinstance(spec, str):
                try:
                    conditions.append(Condition(keyword, pattern=re.compile(spec)))
                except re.error as exc:
                    raise RuleError(f"{keyword}: invalid regular expression {spec!r}: {exc}") from exc
            elif (
                isinstance(spec, (list, tuple))
                and len(spec) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
            ):
                low, high = float(spec[0]), float(spec[1])
                if low > high:
                    raise RuleError(f"{keyword}: range [{low}, {high}] has min > max")
                if dictionary_VR(keyword_dict[keyword]) not in _NUMERIC_VRS:
                    raise RuleError(f"{keyword}: a [min, max] range needs a numeric attribute")
                conditions.append(Condition(keyword, low=low, high=high))
            else:
                raise RuleError(f"{keyword}: expected a regex string or [min, max] numbers, got {spec!r}")
        return cls(tuple(conditions))

    def matches(self, attributes: Any) -> bool:
        """True when every condition holds on *attributes* (a pydicom Dataset or a mapping)."""
        for cond in self.conditions:
            if not cond.matches(_value_of(attributes, cond.keyword)):
                return False
        return True

    def explain(self, attributes: Any) -> tuple[ConditionResult, ...]:
        """Each condition's outcome on *attributes*, in rule order (every one, not only up to the first
        failure): ``all(r.matched for r in explain(a)) == matches(a)``.

        The results carry the value compared (:attr:`ConditionResult.value`): whoever shows them decides
        whether it may be shown (a tag value can be patient data)."""
        return tuple(cond.explain(_value_of(attributes, cond.keyword)) for cond in self.conditions)


def _value_of(attributes: Any, keyword: str) -> Any:
    """The value a condition on *keyword* compares: the attribute's value (a DataElement unwrapped), the
    derived orientation for ``Orientation`` when it is not an attribute, None when absent."""
    getter = getattr(attributes, "get", None)
    value = getter(keyword) if getter else None
    if hasattr(value, "value") and not isinstance(value, (str, bytes)):
        value = value.value
    if value is None and keyword == "Orientation":
        value = derived_orientation(attributes)
    return value
