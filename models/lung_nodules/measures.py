"""Size, growth and volume doubling time of lung nodules (Lung-RADS v2022, REFERENCE.md).

Conventions (stated here, in the model card and tested at their boundaries):
- Mean diameter = (long axis + short axis) / 2 on the same axial image, rounded to ONE decimal,
  half UP (6.25 -> 6.3, 6.05 -> 6.1). Computed in decimal arithmetic from the shortest decimal
  form of each axis, so binary float error never flips a boundary (6.05 stays 6.05).
- Growth: mean diameter increase > 1.5 mm (strictly) between two exams no more than 12 months
  apart. Lung-RADS defines growth within 12 months; for a longer interval we still report an
  increase > 1.5 mm as growth (conservative: the radiologist sees it) — see :func:`is_growing`.
- Volume doubling time VDT = dt * ln 2 / ln(V2 / V1), days. Equal volumes give +inf (no growth);
  a shrinking nodule gives a negative value (its halving time).
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from models.errors import ModelError

GROWTH_THRESHOLD_MM = 1.5
GROWTH_WINDOW_DAYS = 365.25


class MeasureError(ModelError):
    """A measurement input is out of its domain (negative length, non-positive volume or interval)."""


def round_half_up(value: float, digits: int = 1) -> float:
    """Round *value* to *digits* decimals, ties away from zero, using its shortest decimal form."""
    if not math.isfinite(value):
        raise MeasureError(f"cannot round {value!r}: not a finite number")
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def mean_diameter_mm(long_axis_mm: float, short_axis_mm: float) -> float:
    """Lung-RADS size: mean of long and short axis (mm), one decimal, half up.

    Raises:
        MeasureError: a negative or non-finite axis, or a short axis longer than the long axis.
    """
    for name, value in (("long axis", long_axis_mm), ("short axis", short_axis_mm)):
        if not math.isfinite(value) or value < 0:
            raise MeasureError(f"{name} {value!r} mm: must be a finite length >= 0")
    if short_axis_mm > long_axis_mm:
        raise MeasureError(f"short axis {short_axis_mm} mm is longer than the long axis {long_axis_mm} mm")
    mean = (Decimal(repr(float(long_axis_mm))) + Decimal(repr(float(short_axis_mm)))) / 2
    return float(mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def sphere_volume_mm3(diameter_mm: float) -> float:
    """Volume of a sphere of *diameter_mm* (mm3): the equivalence Lung-RADS uses between size and volume."""
    if diameter_mm < 0:
        raise MeasureError(f"diameter {diameter_mm} mm: must be >= 0")
    return math.pi / 6.0 * diameter_mm ** 3


def is_growing(prior_mean_mm: float, current_mean_mm: float, interval_days: float) -> bool:
    """Lung-RADS growth: mean diameter up by MORE than 1.5 mm (1.5 exactly is not growth).

    *interval_days* must be > 0. Lung-RADS states the rule for intervals up to 12 months; over a
    longer interval an increase > 1.5 mm is still reported as growth (our conservative choice).

    Raises:
        MeasureError: negative diameters or a non-positive interval.
    """
    if prior_mean_mm < 0 or current_mean_mm < 0:
        raise MeasureError(f"diameters {prior_mean_mm} / {current_mean_mm} mm: must be >= 0")
    if not interval_days > 0:
        raise MeasureError(f"interval {interval_days} days: the prior must be earlier than the current exam")
    delta = Decimal(repr(float(current_mean_mm))) - Decimal(repr(float(prior_mean_mm)))
    return delta > Decimal(repr(GROWTH_THRESHOLD_MM))


def volume_doubling_time_days(prior_volume_mm3: float, current_volume_mm3: float, interval_days: float) -> float:
    """VDT = dt * ln 2 / ln(V2 / V1) in days; +inf when V2 == V1, negative when the nodule shrinks.

    Raises:
        MeasureError: a non-positive volume or interval.
    """
    if not prior_volume_mm3 > 0 or not current_volume_mm3 > 0:
        raise MeasureError(f"volumes {prior_volume_mm3} / {current_volume_mm3} mm3: must be > 0")
    if not interval_days > 0:
        raise MeasureError(f"interval {interval_days} days: the prior must be earlier than the current exam")
    ratio = current_volume_mm3 / prior_volume_mm3
    if ratio == 1.0:
        return math.inf
    return interval_days * math.log(2.0) / math.log(ratio)
