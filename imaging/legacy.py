"""Legacy but legal values in a source header, put in today's forms before a writer copies them.

Files from older writers carry values that readers accept and writers (pydicom's ``DA``/``TM``,
highdicom's enumerations) refuse: ``14:04:38`` for a time (ACR-NEMA), ``2003.08.18`` for a date,
``MALE`` for a sex, an age without its unit. A result must not fail on them: each value of the
attributes a result copies is normalised when there is one reading of it, and otherwise emptied
(Type 2 attributes, which must be present) or left out. Nothing here logs a value.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pydicom import config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

LOGGER = logging.getLogger(__name__)

#: Attributes of the Patient and General Study modules that are Type 2 (present, possibly empty).
TYPE_2 = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
})
_DATE = re.compile(r"(\d{4})[.\-/]?(\d{2})[.\-/]?(\d{2})")
_TIME = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(\.\d{1,6})?)?)?")
_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}
_AGE = re.compile(r"0*(\d{1,3})\s*([DWMY]?)", re.I)


def _date(text: str) -> str | None:
    m = _DATE.fullmatch(text.strip())
    return "".join(m.groups()) if m else None


def _time(text: str) -> str | None:
    m = _TIME.fullmatch(text.strip())
    return "".join(g for g in m.groups() if g) if m else None


def _age(text: str) -> str | None:
    m = _AGE.fullmatch(text.strip())
    return f"{int(m.group(1)):03d}{(m.group(2) or 'Y').upper()}" if m else None


def _normalised(keyword: str, vr: str, text: str) -> str | None:
    """Today's form of one value, or None when it has none."""
    if text == "":
        return ""
    if vr == "DA":
        return _date(text)
    if vr == "TM":
        return _time(text)
    if vr == "AS":
        return _age(text)
    if keyword == "PatientSex":
        return _SEX.get(text.strip().upper())
    return text


def _fixed(keyword: str, vr: str, value: object) -> tuple[object, object]:
    """(the value as it is, its normalised form or None); multiple values each on their own."""
    if isinstance(value, MultiValue):
        texts = [str(v) for v in value]
        fixed = [_normalised(keyword, vr, t) for t in texts]
        valid = all(f is not None and _valid(vr, f) for f in fixed)
        return texts, (fixed if valid else None)
    text = "" if value is None else str(value)
    one = _normalised(keyword, vr, text)
    return text, (one if one is not None and _valid(vr, one) else None)


def _valid(vr: str, text: str) -> bool:
    try:
        validate_value(vr, text, config.RAISE)
    except ValueError:
        return False
    return True


def normalise_legacy_values(ds: Dataset, keywords: Iterable[str]) -> list[str]:
    """Normalise, in place, the values of *keywords* present in *ds* (sequences left alone); return the
    keywords changed. A value with no reading in today's form is emptied when its attribute is Type 2,
    else the attribute is removed."""
    changed = []
    for keyword in keywords:
        if keyword not in ds:
            continue
        try:
            elem = ds[keyword]
            if elem.VR == "SQ":
                continue
            text, fixed = _fixed(keyword, elem.VR, elem.value)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # a raw value pydicom cannot convert
            LOGGER.debug("source %s unreadable (%s)", keyword, type(exc).__name__)
            text, fixed = None, None
        if fixed == text:
            continue
        if fixed is None and keyword not in TYPE_2:
            del ds[keyword]
        else:
            setattr(ds, keyword, fixed if fixed is not None else "")
        changed.append(keyword)
    if changed:
        LOGGER.debug("legacy values normalised: %s", ", ".join(changed))
    return changed
