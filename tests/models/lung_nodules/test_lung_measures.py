"""Mean diameter rounding, growth rule and volume doubling time at their boundaries."""
from __future__ import annotations

import math

import pytest

from models.lung_nodules.measures import (
    MeasureError,
    is_growing,
    mean_diameter_mm,
    round_half_up,
    sphere_volume_mm3,
    volume_doubling_time_days,
)


@pytest.mark.parametrize("long_mm, short_mm, expected", [
    (6.5, 6.0, 6.3),    # 6.25 -> 6.3 (half up, not to even)
    (6.1, 6.0, 6.1),    # 6.05 -> 6.1 although 6.05 is 6.04999… in binary
    (6.3, 6.2, 6.3),    # 6.25
    (8.15, 8.0, 8.1),   # 8.075 -> 8.1
    (5.94, 5.9, 5.9),   # 5.92 -> 5.9
    (5.96, 5.9, 5.9),   # 5.93
    (6.0, 5.9, 6.0),    # 5.95 -> 6.0 : crosses the Lung-RADS 6 mm boundary
    (0.0, 0.0, 0.0),
])
def test_mean_diameter_one_decimal_half_up(long_mm: float, short_mm: float, expected: float) -> None:
    assert mean_diameter_mm(long_mm, short_mm) == expected


def test_round_half_up_uses_the_decimal_form() -> None:
    assert round(2.675, 2) == 2.67  # Python's float rounding (what we avoid)
    assert round_half_up(2.675, 2) == 2.68
    assert round_half_up(0.05) == 0.1


@pytest.mark.parametrize("long_mm, short_mm", [(-1.0, 0.0), (5.0, 6.0), (math.nan, 1.0)])
def test_mean_diameter_rejects_bad_axes(long_mm: float, short_mm: float) -> None:
    with pytest.raises(MeasureError):
        mean_diameter_mm(long_mm, short_mm)


@pytest.mark.parametrize("prior, current, growing", [
    (6.0, 7.5, False),   # exactly 1.5 mm: not growth
    (6.0, 7.6, True),
    (6.1, 7.6, False),   # 1.5 again (decimal arithmetic: 7.6 - 6.1 is not 1.4999…)
    (4.2, 5.8, True),
    (8.0, 7.0, False),
])
def test_growth_is_more_than_1_5_mm(prior: float, current: float, growing: bool) -> None:
    assert is_growing(prior, current, 180) is growing


def test_growth_needs_a_positive_interval() -> None:
    with pytest.raises(MeasureError, match="earlier"):
        is_growing(5.0, 8.0, 0)


def test_vdt_26_percent_diameter_increase_doubles_volume() -> None:
    v1 = sphere_volume_mm3(10.0)
    v2 = sphere_volume_mm3(12.6)  # 1.26^3 = 2.0004
    assert volume_doubling_time_days(v1, v2, 100.0) == pytest.approx(100.0, rel=1e-3)


def test_vdt_formula_and_edge_cases() -> None:
    assert volume_doubling_time_days(100.0, 400.0, 90.0) == pytest.approx(45.0)
    assert volume_doubling_time_days(100.0, 100.0, 90.0) == math.inf
    assert volume_doubling_time_days(400.0, 100.0, 90.0) == pytest.approx(-45.0)
    with pytest.raises(MeasureError, match="volumes"):
        volume_doubling_time_days(0.0, 100.0, 90.0)
    with pytest.raises(MeasureError, match="interval"):
        volume_doubling_time_days(100.0, 200.0, -1.0)
