"""Selection rules on DICOM attributes: the shape of ``routes.match`` in the configuration.

A rule maps a DICOM keyword to either a regular expression (for text values;
``re.search``, multi-valued attributes joined with a backslash) or a
``[min, max]`` inclusive numeric range. An absent attribute never matches.
No ``eval``: only these two forms exist.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.multival import MultiValue

from imaging.errors import RuleError

_NUMERIC_VRS = {"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"}


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
            if not cond.matches(value):
                return False
        return True
