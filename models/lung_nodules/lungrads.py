"""Lung-RADS v2022 category per nodule and per exam (ACR; Christensen 2024, CHEST 165:738).

Inputs are mean diameters already rounded to one decimal (:func:`measures.mean_diameter_mm`).
Thresholds are ``<`` at the upper end as the ACR table states them: a 6.0 mm solid baseline
nodule is category 3, 5.9 mm is category 2.

Rules implemented (REFERENCE.md, completed from the ACR v2022 table where it is silent):
- Solid, baseline (and stable): < 6 -> 2; 6 to < 8 -> 3; 8 to < 15 -> 4A; >= 15 -> 4B.
  New: < 4 -> 2; 4 to < 6 -> 3; 6 to < 8 -> 4A; >= 8 -> 4B. Growing: < 8 -> 4A; >= 8 -> 4B.
  Juxtapleural solid < 10 mm with benign features (smooth margins; oval, lentiform or triangular),
  at baseline, new or stable -> 2.
- Part-solid, baseline (and stable): total < 6 -> 2; total >= 6 with solid part < 6 -> 3;
  solid part 6 to < 8 -> 4A; >= 8 -> 4B. New: total < 6 -> 3 (ACR); otherwise, and when growing,
  solid part < 4 -> 4A, >= 4 -> 4B.
- Ground-glass: < 30 -> 2; >= 30 -> 3 (baseline, new or growing); >= 30 and stable -> 2 (ACR).
- Exam: the highest nodule category; 1 when there is no nodule.
Not implemented: 4X (needs features the measures do not give), 0 and the S modifier, the ACR
stepped-management downgrades at follow-up (a stable nodule is categorised by its size as at
baseline: conservative).
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from models.errors import ModelError


class LungRadsError(ModelError):
    """Inconsistent nodule description (e.g. a part-solid nodule without its solid part)."""


class NoduleType(enum.StrEnum):
    SOLID = "solid"
    PART_SOLID = "part-solid"
    GROUND_GLASS = "ground-glass"


class NoduleStatus(enum.StrEnum):
    BASELINE = "baseline"
    NEW = "new"
    GROWING = "growing"
    STABLE = "stable"


class LungRads(enum.Enum):
    """Categories in increasing order of concern; ``value`` is the label the ACR prints."""

    CAT_1 = "1"
    CAT_2 = "2"
    CAT_3 = "3"
    CAT_4A = "4A"
    CAT_4B = "4B"

    @property
    def rank(self) -> int:
        return list(LungRads).index(self)

    def __lt__(self, other: LungRads) -> bool:
        return self.rank < other.rank


@dataclass(frozen=True)
class NoduleForRads:
    """What Lung-RADS needs about one nodule. Diameters in mm, one decimal."""

    nodule_type: NoduleType
    mean_diameter_mm: float
    solid_diameter_mm: float = 0.0  # part-solid: mean diameter of the solid component
    status: NoduleStatus = NoduleStatus.BASELINE
    juxtapleural: bool = False
    benign_features: bool = False  # smooth margins and oval/lentiform/triangular shape

    def __post_init__(self) -> None:
        if self.mean_diameter_mm < 0 or self.solid_diameter_mm < 0:
            raise LungRadsError(f"nodule sizes {self.mean_diameter_mm}/{self.solid_diameter_mm} mm: must be >= 0")
        if self.nodule_type is NoduleType.PART_SOLID and self.solid_diameter_mm <= 0:
            raise LungRadsError("part-solid nodule needs solid_diameter_mm > 0")
        if self.solid_diameter_mm > self.mean_diameter_mm:
            raise LungRadsError(f"solid part {self.solid_diameter_mm} mm larger than the nodule "
                                f"{self.mean_diameter_mm} mm")


def _solid(n: NoduleForRads) -> LungRads:
    d = n.mean_diameter_mm
    if n.juxtapleural and n.benign_features and d < 10.0 and n.status is not NoduleStatus.GROWING:
        return LungRads.CAT_2
    if n.status is NoduleStatus.GROWING:
        return LungRads.CAT_4A if d < 8.0 else LungRads.CAT_4B
    if n.status is NoduleStatus.NEW:
        bands = ((4.0, LungRads.CAT_2), (6.0, LungRads.CAT_3), (8.0, LungRads.CAT_4A))
    else:
        bands = ((6.0, LungRads.CAT_2), (8.0, LungRads.CAT_3), (15.0, LungRads.CAT_4A))
    for upper, category in bands:
        if d < upper:
            return category
    return LungRads.CAT_4B


def _part_solid(n: NoduleForRads) -> LungRads:
    total, solid = n.mean_diameter_mm, n.solid_diameter_mm
    if n.status is NoduleStatus.NEW and total < 6.0:
        return LungRads.CAT_3
    if n.status in (NoduleStatus.NEW, NoduleStatus.GROWING):
        return LungRads.CAT_4A if solid < 4.0 else LungRads.CAT_4B
    if total < 6.0:
        return LungRads.CAT_2
    if solid < 6.0:
        return LungRads.CAT_3
    return LungRads.CAT_4A if solid < 8.0 else LungRads.CAT_4B


def _ground_glass(n: NoduleForRads) -> LungRads:
    if n.mean_diameter_mm < 30.0 or n.status is NoduleStatus.STABLE:
        return LungRads.CAT_2
    return LungRads.CAT_3


def nodule_category(nodule: NoduleForRads) -> LungRads:
    """Lung-RADS v2022 category of one nodule (see the module docstring for the rules)."""
    if nodule.nodule_type is NoduleType.SOLID:
        return _solid(nodule)
    if nodule.nodule_type is NoduleType.PART_SOLID:
        return _part_solid(nodule)
    return _ground_glass(nodule)


def exam_category(nodules: Iterable[NoduleForRads]) -> LungRads:
    """The highest nodule category of the exam; 1 (negative) when there is no nodule."""
    return max((nodule_category(n) for n in nodules), default=LungRads.CAT_1, key=lambda c: c.rank)
