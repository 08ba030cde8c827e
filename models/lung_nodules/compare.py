"""Comparison with a prior exam: match nodules, growth, volume doubling time, new/growing status.

Matching is by centre distance in patient coordinates (LPS mm): the nearest prior nodule within
``max(match_mm, larger radius + match_mm / 2)``. It assumes the two exams share the patient's
coordinate frame closely enough (same scanner table position conventions); there is no
registration. Each prior nodule is matched at most once.

Growth (Lung-RADS v2022, REFERENCE.md): a solid nodule grows when its mean diameter increases by
more than 1.5 mm. For a part-solid nodule "new or growing" refers to the SOLID component: it grows
when its solid component's mean diameter increases by more than 1.5 mm, or when the prior nodule
had no solid component (ground glass then: the solid component is new). When only the ground-glass
part grew (total diameter up > 1.5 mm, solid component not), the status is ``ggo-growing`` and the
baseline rule for its size applies. A ground-glass nodule grows on its mean diameter.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.lung_nodules.candidates import Nodule
from models.lung_nodules.lungrads import NoduleStatus, NoduleType
from models.lung_nodules.measures import MeasureError, is_growing, volume_doubling_time_days


@dataclass(frozen=True)
class Comparison:
    """How one current nodule relates to the prior exam (status BASELINE when there is no prior)."""

    status: NoduleStatus
    prior_index: int | None = None
    interval_days: float = 0.0
    delta_mean_mm: float | None = None
    vdt_days: float | None = None
    delta_solid_mm: float | None = None  # part-solid: change of the solid component's mean diameter


def growth_status(old: Nodule, new: Nodule, days: float) -> NoduleStatus:
    """GROWING, GROUND_GLASS_GROWING (part-solid only) or STABLE for a matched pair (see the module doc).

    Raises:
        MeasureError: a non-positive interval.
    """
    if new.nodule_type is NoduleType.PART_SOLID:
        old_solid = 0.0 if old.nodule_type is NoduleType.GROUND_GLASS else old.solid_diameter_mm
        if old_solid <= 0.0 or is_growing(old_solid, new.solid_diameter_mm, days):
            return NoduleStatus.GROWING
        if is_growing(old.mean_diameter_mm, new.mean_diameter_mm, days):
            return NoduleStatus.GROUND_GLASS_GROWING
        return NoduleStatus.STABLE
    return NoduleStatus.GROWING if is_growing(old.mean_diameter_mm, new.mean_diameter_mm, days) else NoduleStatus.STABLE


def interval_days(prior_date: str, current_date: str) -> float:
    """Days between two DICOM dates (YYYYMMDD).

    Raises:
        MeasureError: a date is not YYYYMMDD, or the prior is not earlier.
    """
    try:
        d0 = dt.datetime.strptime(prior_date, "%Y%m%d").date()
        d1 = dt.datetime.strptime(current_date, "%Y%m%d").date()
    except ValueError as exc:
        raise MeasureError(f"study dates {prior_date!r} / {current_date!r}: expected YYYYMMDD") from exc
    days = float((d1 - d0).days)
    if days <= 0:
        raise MeasureError(f"prior study date {prior_date} is not before the current {current_date}")
    return days


def compare(current: Sequence[Nodule], prior: Sequence[Nodule] | None, days: float,
            match_mm: float = 10.0) -> list[Comparison]:
    """One :class:`Comparison` per current nodule (same order). *prior* None: no prior exam."""
    if prior is None:
        return [Comparison(NoduleStatus.BASELINE) for _ in current]
    used: set[int] = set()
    out = []
    for nodule in current:
        best, best_d = None, math.inf
        for i, old in enumerate(prior):
            if i in used:
                continue
            d = float(np.linalg.norm(np.subtract(nodule.centre_mm, old.centre_mm)))
            limit = max(match_mm, max(nodule.mean_diameter_mm, old.mean_diameter_mm) / 2 + match_mm / 2)
            if d <= limit and d < best_d:
                best, best_d = i, d
        if best is None:
            out.append(Comparison(NoduleStatus.NEW, interval_days=days))
            continue
        used.add(best)
        old = prior[best]
        vdt = volume_doubling_time_days(old.volume_mm3, nodule.volume_mm3, days)
        delta_solid = None
        if nodule.nodule_type is NoduleType.PART_SOLID:
            old_solid = 0.0 if old.nodule_type is NoduleType.GROUND_GLASS else old.solid_diameter_mm
            delta_solid = round(nodule.solid_diameter_mm - old_solid, 1)
        out.append(Comparison(growth_status(old, nodule, days), best, days,
                              round(nodule.mean_diameter_mm - old.mean_diameter_mm, 1), vdt, delta_solid))
    return out
