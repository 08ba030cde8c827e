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
            getter = getattr(attributes, "get", None)
            value = getter(cond.keyword) if getter else None
            if hasattr(value, "value") and not isinstance(value, (str, bytes)):
                value = value.value
            if value is None and cond.keyword == "Orientation":
                value = derived_orientation(attributes)
            if not cond.matches(value):
                return False
        return True
