"""How values read on the summary images and the PDF: one precision per unit, human units, no UCUM codes,
dates and names as a reader writes them, and the wrapper that keeps text inside its width."""
from __future__ import annotations

import pytest

from imaging.capture import display_font
from imaging.display import (
    date_text,
    finding_heading,
    measurement_text,
    number_text,
    person_name_text,
    sex_text,
    value_text,
    wrap,
)
from imaging.results import Code, Finding, Measurement

MM = Code("mm", "UCUM", "millimeter")


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (12.44, "mm", "12.4 mm"), (12.45, "mm", "12.5 mm"), (12.0, "mm", "12.0 mm"),  # diameters to 0.1 mm
    (1047.6, "mm3", "1048 mm³"), (0.4, "mm3", "0 mm³"),  # volumes in whole mm³
    (60.123, "1", "60.1"),  # a score: no unit "1"
    (3.0, "{lesions}", "3 lesions"),  # a count: an integer, the annotation as a word
    (58.74, "ml/m2", "58.7 ml/m²"), (2.254, "m2", "2.25 m²"), (80.4, "/min", "80 /min"), (120.6, "d", "121 days"),
    (-0.04, "mm", "0.0 mm"), (-1.55, "mm", "-1.6 mm"),  # no "-0.0"; half away from zero
])
def test_value_text(value: float, unit: str, expected: str) -> None:
    assert value_text(value, unit) == expected


def test_count_unit_word_not_repeated_after_its_concept() -> None:
    assert value_text(3.0, "{lesions}", concept="Number of lesions") == "3"


def test_number_text_rounds_half_up_at_the_shown_decimal() -> None:
    assert [number_text(v, 1) for v in (0.05, 0.15, 0.25, 2.675)] == ["0.1", "0.2", "0.3", "2.7"]


def test_measurement_text_names_its_derivation() -> None:
    m = Measurement(Code("81827009", "SCT", "Diameter"), 12.44, MM, derivation=Code("373098007", "SCT", "Mean"))
    assert measurement_text(m) == "Diameter (mean): 12.4 mm"


def test_heading_has_no_tracking_id_and_no_repeated_site() -> None:
    lung = Code("3341006", "SCT", "Right lung")
    nodule = Finding("nodule-1", Code("27925004", "SCT", "Nodule"), lung, label="Solid nodule, right lung, 7.0 mm")
    assert finding_heading(1, nodule, "image 42") == "1. Solid nodule, right lung, 7.0 mm (image 42)"
    other = Finding("calcium-LAD", Code("29483008", "SCT", "Plaque"), lung, label="Calcium")
    assert finding_heading(2, other) == "2. Calcium - Right lung"


@pytest.mark.parametrize(("value", "expected"), [("19600101", "1960-01-01"), ("", ""), ("1960", "1960"),
                                                 (None, "")])
def test_date_text(value: object, expected: str) -> None:
    assert date_text(value) == expected


def test_person_name_and_sex() -> None:
    assert person_name_text("Doe^Jane^Mary^Dr") == "Doe, Jane Mary"
    assert person_name_text("PHANTOM^CHEST") == "PHANTOM, CHEST" and person_name_text("Doe") == "Doe"
    assert (sex_text("F"), sex_text("M"), sex_text("O"), sex_text("")) == ("female", "male", "other", "")


def test_wrap_keeps_every_line_inside_the_width_by_the_font_metrics() -> None:
    font = display_font(19)
    text = ("Lung-RADS rule applied: category 2: juxtapleural, smooth, lentiform, attached to the costal pleura, "
            "< 10 mm; a_word_far_longer_than_any_line_of_the_legend_can_hold_at_this_size_of_font")
    lines = wrap(text, font.getlength, 300, indent="  ")
    assert len(lines) > 3 and all(font.getlength(line) <= 300 for line in lines)
    assert "".join(line.strip() for line in lines).replace(" ", "") == text.replace(" ", "")  # nothing lost
    assert all(line.startswith("  ") for line in lines[1:])


def test_wrap_leaves_no_short_orphan() -> None:
    assert wrap("Solid nodule, left lung, lower zone, 7.2 mm, Lung-RADS 2", len, 52) == [
        "Solid nodule, left lung, lower zone, 7.2 mm,", "Lung-RADS 2"]
