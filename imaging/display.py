"""How result values read on the summary images and the PDF report: human units, one precision per
quantity, dates and names as a reader writes them, and text wrapped to a width.

The SR keeps the values and UCUM codes as measured; only what a reader sees goes through here, so a
quantity shows with the same precision on every key image, in every legend line and in the PDF
(diameters to 0.1 mm, volumes in whole mm³, counts as integers, no UCUM code such as ``1`` or
``{lesions}`` as text).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

from imaging.results import Finding, Measurement, QualitativeEvaluation

#: UCUM code -> how the unit is written for a reader ("" = a pure number).
UNIT_TEXT = {
    "1": "", "mm3": "mm³", "mm2": "mm²", "cm3": "cm³", "cm2": "cm²", "m2": "m²", "ml/m2": "ml/m²",
    "g/m2": "g/m²", "l/min/m2": "l/min/m²", "d": "days", "[hnsf'U]": "HU", "{beats}/min": "/min",
}
#: UCUM code -> decimals shown (one precision per quantity); other units get :data:`DEFAULT_DECIMALS`.
DECIMALS = {
    "mm": 1, "cm": 1, "mm2": 1, "mm3": 0, "cm3": 1, "ml": 1, "ml/m2": 1, "g": 1, "g/m2": 1, "mg": 1, "%": 1,
    "l/min": 1, "l/min/m2": 1, "/min": 0, "{beats}/min": 0, "m2": 2, "d": 0, "[hnsf'U]": 0, "1": 1,
}
DEFAULT_DECIMALS = 1
#: DICOM Patient's Sex -> words.
SEX_TEXT = {"M": "male", "F": "female", "O": "other"}


def unit_text(ucum: str) -> str:
    """The unit as a reader writes it: ``mm3`` -> ``mm³``, ``1`` -> "", ``{lesions}`` -> ``lesions``."""
    if ucum.startswith("{") and ucum.endswith("}"):
        return ucum[1:-1]
    return UNIT_TEXT.get(ucum, ucum)


def number_text(value: float, decimals: int) -> str:
    """*value* with *decimals* decimals, half away from zero (12.45 -> 12.5), never "-0.0"."""
    scaled = abs(value) * 10 ** decimals
    rounded = math.floor(scaled + 0.5 + 1e-9) / 10 ** decimals
    text = f"{rounded:.{decimals}f}"
    return f"-{text}" if value < 0 and rounded != 0 else text


def value_text(value: float, ucum: str, *, concept: str = "") -> str:
    """A value with its unit at the unit's precision: ``12.4 mm``, ``1047 mm³``, ``60.1``, ``3 lesions``.

    An annotation unit (``{lesions}``) is a count: an integer, and its word is left out when the
    *concept* already says it ("Number of lesions: 3").
    """
    if ucum.startswith("{") and ucum.endswith("}"):
        word = ucum[1:-1]
        number = number_text(value, 0)
        return number if word.lower() in concept.lower() else f"{number} {word}"
    number = number_text(value, DECIMALS.get(ucum, DEFAULT_DECIMALS))
    unit = unit_text(ucum)
    return f"{number} {unit}" if unit else number


def measurement_text(m: Measurement) -> str:
    """``Diameter (mean): 12.4 mm``: the concept, its derivation when given, the value in human units."""
    name = m.concept.meaning + (f" ({m.derivation.meaning.lower()})" if m.derivation is not None else "")
    return f"{name}: {value_text(m.value, m.unit.value, concept=m.concept.meaning)}"


def evaluation_text(e: QualitativeEvaluation) -> str:
    """``Lung-RADS v2022 category: Lung-RADS 4A``."""
    return f"{e.concept.meaning}: {e.value.meaning}"


def finding_heading(number: int, finding: Finding, where: str = "") -> str:
    """``1. Solid nodule, right lung ... (image 42)``: the finding's number as marked on the key image,
    its label, its site unless the label already names it, and where to find it. No tracking id."""
    label = finding.display_label
    site = finding.finding_site.meaning if finding.finding_site else ""
    site_text = f" - {site}" if site and site.lower() not in label.lower() else ""
    return f"{number}. {label}{site_text}" + (f" ({where})" if where else "")


def finding_details(finding: Finding) -> list[str]:
    """The lines under a finding's heading: every measurement, then every evaluation."""
    return [measurement_text(m) for m in finding.measurements] + [evaluation_text(e) for e in finding.evaluations]


def date_text(value: object) -> str:
    """A DICOM DA (``19600101``) as ``1960-01-01``; anything else as it is ("" for empty)."""
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def person_name_text(value: object) -> str:
    """A DICOM PN (``Doe^John^^Dr``) as ``Doe, John``: family name, then given and middle names."""
    parts = [p.strip() for p in str(value or "").split("=")[0].split("^")]
    family, given = (parts + ["", ""])[:2]
    rest = " ".join(p for p in [given] + parts[2:3] if p)
    return f"{family}, {rest}" if family and rest else family or rest


def sex_text(value: object) -> str:
    """DICOM Patient's Sex as a word (``M`` -> ``male``)."""
    text = str(value or "").strip()
    return SEX_TEXT.get(text.upper(), text)


def wrap(text: str, measure: Callable[[str], float], width: float, indent: str = "") -> list[str]:
    """*text* in lines no wider than *width* as *measure* (the renderer's own font metrics) reports;
    continuation lines start with *indent*. Words longer than a line are broken between characters; a
    last line of three characters or fewer takes the word before it along ("Lung-RADS 2" stays whole)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width or not line.strip():
            line = candidate
        else:
            lines.append(line)
            line = indent + word
        while measure(line) > width and len(line.strip()) > 1:
            cut = len(line) - 1
            while cut > len(indent) + 1 and measure(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = indent + line[cut:]
    lines.append(line)
    if len(lines) > 1 and len(lines[-1].strip()) <= 3 and " " in lines[-2].strip():  # no orphan "2" alone
        head, word = lines[-2].rsplit(" ", 1)
        moved = f"{indent}{word} {lines[-1].strip()}"
        if measure(moved) <= width:
            lines[-2:] = [head, moved]
    return lines


@functools.lru_cache(maxsize=1)
def font_path() -> Path:
    """DejaVu Sans (from matplotlib's data): covers ³, ², ×, ≥ and the em dash, unlike Pillow's bundled font."""
    import matplotlib  # local: only rendering needs it

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
