"""Synthetic emergency-department arrivals: the bundled history (``data/history.csv``) and test data.

Hourly rate = base × hour-of-day profile × day-of-week factor × (1 + yearly trend) × holiday factor;
counts are negative binomial around it (dispersion ``alpha``). Nothing here is real data.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

BUNDLED = Path(__file__).resolve().parent / "data" / "history.csv"

# relative arrivals by hour of day (sums to 24): low at night, peak late morning and early evening
HOUR_PROFILE = np.array([0.45, 0.35, 0.3, 0.27, 0.27, 0.32, 0.5, 0.8, 1.2, 1.5, 1.62, 1.6,
                         1.52, 1.45, 1.42, 1.4, 1.42, 1.45, 1.45, 1.35, 1.2, 1.0, 0.8, 0.6])
HOUR_PROFILE = HOUR_PROFILE * 24 / HOUR_PROFILE.sum()
DAY_FACTOR = np.array([1.15, 1.02, 0.98, 0.97, 1.0, 0.92, 0.96])  # Monday … Sunday


@dataclass(frozen=True)
class SynthSpec:
    start: datetime = datetime(2024, 1, 1)
    weeks: int = 16
    arrivals_per_day: float = 120.0
    trend_per_year: float = 0.03
    alpha: float = 0.03
    holidays: tuple[date, ...] = (date(2024, 4, 1),)
    holiday_factor: float = 0.85
    seed: int = 7


def expected_rate(spec: SynthSpec, hours: list[datetime]) -> np.ndarray:
    """Mean arrivals per hour for each hour (the truth behind the counts)."""
    t_years = np.array([(h - spec.start).total_seconds() / (365.25 * 86400) for h in hours])
    hod = np.array([h.hour for h in hours])
    dow = np.array([h.weekday() for h in hours])
    holiday = np.array([spec.holiday_factor if h.date() in spec.holidays else 1.0 for h in hours])
    return spec.arrivals_per_day / 24 * HOUR_PROFILE[hod] * DAY_FACTOR[dow] * (1 + spec.trend_per_year * t_years) * holiday


def hourly_counts(spec: SynthSpec) -> tuple[list[datetime], np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    hours = [spec.start + timedelta(hours=i) for i in range(spec.weeks * 168)]
    mu = expected_rate(spec, hours)
    n = 1.0 / spec.alpha
    counts = rng.negative_binomial(n, n / (n + mu))
    return hours, counts


def write_bundled(path: Path = BUNDLED, spec: SynthSpec = SynthSpec()) -> None:
    """Regenerate the bundled history file (``hour,count``)."""
    hours, counts = hourly_counts(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["hour", "count"])
        for h, c in zip(hours, counts, strict=True):
            w.writerow([h.strftime("%Y-%m-%dT%H:%M"), int(c)])


if __name__ == "__main__":
    write_bundled()
