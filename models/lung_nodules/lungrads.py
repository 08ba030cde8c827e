"""Lung-RADS v2022 category per nodule and per exam (ACR; Christensen 2024, CHEST 165:738).

Inputs are mean diameters already rounded to one decimal (:func:`measures.mean_diameter_mm`).
Thresholds are ``<`` at the upper end as the ACR table states them: a 6.0 mm solid baseline
nodule is category 3, 5.9 mm is category 2.

Rules implemented (REFERENCE.md, completed from the ACR v2022 table where it is silent):
- Solid, baseline (and stable): < 6 -> 2; 6 to < 8 -> 3; 8 to < 15 -> 4A; >= 15 -> 4B.
  New: < 4 -> 2; 4 to < 6 -> 3; 6 to < 8 -> 4A; >= 8 -> 4B. Growing: < 8 -> 4A; >= 8 -> 4B.
- Juxtapleural solid < 10 mm with ALL benign features (attached to the pleura; smooth margins;
  oval, lentiform or triangular shape), at baseline, new or stable (not growing) -> 2. When a feature
  is uncertain or fails (a round nodule, a margin that is not smooth) the size category stands, and
  the assessment says why (:class:`Rule`). The pipeline sees the costal and mediastinal pleura, not
  the fissures: a perifissural nodule keeps its size category.
- Part-solid, baseline (and stable): total < 6 -> 2; total >= 6 with solid part < 6 -> 3;
  solid part 6 to < 8 -> 4A; >= 8 -> 4B. New: total < 6 -> 3 (ACR); otherwise, and when the SOLID
  component is new or growing (> 1.5 mm, :mod:`compare`), solid part < 4 -> 4A, >= 4 -> 4B. When only
  the ground-glass part grew (status ``ggo-growing``) the baseline rule for its size applies.
- Ground-glass: < 30 -> 2; >= 30 -> 3 (baseline, new or growing); >= 30 and stable -> 2 (ACR).
- 4X ("category 3 or 4 nodules with additional features or imaging findings that increase the
  suspicion of lung cancer"): of the ACR's examples (spiculation, a ground-glass nodule that doubles
  in size in 1 year, enlarged lymph nodes) the pipeline measures one: a ground-glass nodule of
  category 3 or 4 whose volume doubling time against the prior is <= 365 days -> 4X. Margins are
  not graded (no spiculation) and nothing outside the lungs is looked at (no lymph nodes).
- Exam: the highest nodule category (4X above 4B); 1 when there is no nodule.
Not implemented: 0, the S modifier (findings unrelated to lung cancer, e.g. coronary calcification,
emphysema or a mass outside the lungs, are outside this pipeline's scope: the outputs say so), the
benign-calcification and fat rules (1), airway and cyst rules, "slowly growing over several exams"
(one prior is compared), and the ACR stepped-management downgrades at follow-up (a stable nodule is
categorised by its size as at baseline: conservative).
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
    #: part-solid: the ground-glass part grew > 1.5 mm, the solid component did not (baseline rule for its size)
    GROUND_GLASS_GROWING = "ggo-growing"


class LungRads(enum.Enum):
    """Categories in increasing order of concern; ``value`` is the label the ACR prints."""

    CAT_1 = "1"
    CAT_2 = "2"
    CAT_3 = "3"
    CAT_4A = "4A"
    CAT_4B = "4B"
    CAT_4X = "4X"

    @property
    def rank(self) -> int:
        return list(LungRads).index(self)

    def __lt__(self, other: LungRads) -> bool:
        return self.rank < other.rank


JUXTAPLEURAL_MAX_MM = 10.0  # the benign juxtapleural rule: solid, mean diameter < 10 mm
GGN_4X_DOUBLING_DAYS = 365.0  # 4X: a ground-glass nodule that doubles (its volume) within 1 year


class PleuralShape(enum.StrEnum):
    """Shape of a juxtapleural nodule. Lentiform, oval and triangular are the v2022 benign shapes."""

    LENTIFORM = "lentiform"
    OVAL = "oval"
    TRIANGULAR = "triangular"
    ROUND = "round"
    UNCERTAIN = "uncertain"


BENIGN_SHAPES = frozenset({PleuralShape.LENTIFORM, PleuralShape.OVAL, PleuralShape.TRIANGULAR})


@dataclass(frozen=True)
class JuxtapleuralFeatures:
    """The v2022 benign features of a nodule attached to the pleura. ``smooth`` None: uncertain."""

    smooth: bool | None = None
    shape: PleuralShape = PleuralShape.UNCERTAIN

    @property
    def benign(self) -> bool:
        """All features present: smooth margins and a lentiform, oval or triangular shape."""
        return self.smooth is True and self.shape in BENIGN_SHAPES

    def failing(self) -> tuple[str, str]:
        """(short code, words) of the first feature missing or uncertain; ("", "") when all are present."""
        if self.smooth is None:
            return "MARGU", "margin uncertain"
        if not self.smooth:
            return "MARGIN", "margin not smooth"
        if self.shape is PleuralShape.ROUND:
            return "ROUND", "round"
        if self.shape not in BENIGN_SHAPES:
            return "SHAPEU", "shape uncertain"
        return "", ""


@dataclass(frozen=True)
class Rule:
    """A rule that set or kept a category beyond the plain size table, as the outputs state it.

    ``code``: at most 16 characters (a DICOM code value); ``text``: at most 64 (its code meaning).
    """

    code: str
    text: str

    def __post_init__(self) -> None:
        if not 0 < len(self.code) <= 16 or not 0 < len(self.text) <= 64:
            raise LungRadsError(f"rule {self.code!r}: code 1-16 and text 1-64 characters")


@dataclass(frozen=True)
class NoduleForRads:
    """What Lung-RADS needs about one nodule. Diameters in mm, one decimal.

    *features*: the juxtapleural benign features as measured; without them *benign_features* True
    means all features were confirmed (e.g. a phantom's ground truth). *volume_doubling_days*: against
    the prior exam (None without one), for the 4X rule.
    """

    nodule_type: NoduleType
    mean_diameter_mm: float
    solid_diameter_mm: float = 0.0  # part-solid: mean diameter of the solid component
    status: NoduleStatus = NoduleStatus.BASELINE
    juxtapleural: bool = False
    benign_features: bool = False  # all features confirmed, when *features* is not given
    features: JuxtapleuralFeatures | None = None
    volume_doubling_days: float | None = None

    def __post_init__(self) -> None:
        if self.mean_diameter_mm < 0 or self.solid_diameter_mm < 0:
            raise LungRadsError(f"nodule sizes {self.mean_diameter_mm}/{self.solid_diameter_mm} mm: must be >= 0")
        if self.nodule_type is NoduleType.PART_SOLID and self.solid_diameter_mm <= 0:
            raise LungRadsError("part-solid nodule needs solid_diameter_mm > 0")
        if self.solid_diameter_mm > self.mean_diameter_mm:
            raise LungRadsError(f"solid part {self.solid_diameter_mm} mm larger than the nodule "
                                f"{self.mean_diameter_mm} mm")

    @property
    def all_benign_features(self) -> bool:
        return self.features.benign if self.features is not None else self.benign_features


@dataclass(frozen=True)
class Assessment:
    """A nodule's category and the rules beyond the size table that set or kept it (empty: size table)."""

    category: LungRads
    rules: tuple[Rule, ...] = ()


def _solid_size(n: NoduleForRads) -> LungRads:
    d = n.mean_diameter_mm
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


def _solid(n: NoduleForRads) -> Assessment:
    size = _solid_size(n)
    if not (n.juxtapleural and n.mean_diameter_mm < JUXTAPLEURAL_MAX_MM and n.status is not NoduleStatus.GROWING):
        return Assessment(size)
    if n.all_benign_features:
        shape = n.features.shape.value if n.features is not None else "benign shape"
        code = f"LR2-JP-{shape[:5].upper()}" if n.features is not None else "LR2-JP"
        return Assessment(LungRads.CAT_2, (Rule(code, f"category 2: juxtapleural, smooth, {shape}, < 10 mm"),))
    if size is LungRads.CAT_2:
        return Assessment(size)
    code, failing = n.features.failing() if n.features is not None else ("UNCONF", "features not confirmed")
    return Assessment(size, (Rule(f"LRS-JP-{code}", f"size category kept: juxtapleural, {failing}"),))


def _part_solid(n: NoduleForRads) -> Assessment:
    total, solid = n.mean_diameter_mm, n.solid_diameter_mm
    if n.status is NoduleStatus.NEW and total < 6.0:
        return Assessment(LungRads.CAT_3)
    if n.status in (NoduleStatus.NEW, NoduleStatus.GROWING):
        category = LungRads.CAT_4A if solid < 4.0 else LungRads.CAT_4B
        band = "< 4 mm" if solid < 4.0 else ">= 4 mm"
        word = "new" if n.status is NoduleStatus.NEW else "new or growing"
        return Assessment(category, (Rule(f"LR{category.value}-PS-SOLID",
                                          f"category {category.value}: solid component {word}, {band}"),))
    if total < 6.0:
        category = LungRads.CAT_2
    elif solid < 6.0:
        category = LungRads.CAT_3
    else:
        category = LungRads.CAT_4A if solid < 8.0 else LungRads.CAT_4B
    if n.status is NoduleStatus.GROUND_GLASS_GROWING:
        return Assessment(category, (Rule("LR-PS-GGOGROW", "size category: only the ground-glass part grew"),))
    return Assessment(category)


def _ground_glass(n: NoduleForRads) -> Assessment:
    if n.mean_diameter_mm < 30.0 or n.status is NoduleStatus.STABLE:
        return Assessment(LungRads.CAT_2)
    return Assessment(LungRads.CAT_3)


def _with_4x(n: NoduleForRads, assessment: Assessment) -> Assessment:
    """4X for a category 3 or 4 ground-glass nodule whose volume doubled within 1 year (see the module doc)."""
    vdt = n.volume_doubling_days
    if (n.nodule_type is NoduleType.GROUND_GLASS and assessment.category.rank >= LungRads.CAT_3.rank
            and vdt is not None and 0 < vdt <= GGN_4X_DOUBLING_DAYS):
        rule = Rule("LR4X-GGN-VDT", "category 4X: ground-glass, volume doubling time <= 1 year")
        return Assessment(LungRads.CAT_4X, (*assessment.rules, rule))
    return assessment


def assess(nodule: NoduleForRads) -> Assessment:
    """Lung-RADS v2022 category of one nodule with the rules that set it (see the module docstring)."""
    if nodule.nodule_type is NoduleType.SOLID:
        return _with_4x(nodule, _solid(nodule))
    if nodule.nodule_type is NoduleType.PART_SOLID:
        return _with_4x(nodule, _part_solid(nodule))
    return _with_4x(nodule, _ground_glass(nodule))


def nodule_category(nodule: NoduleForRads) -> LungRads:
    """Lung-RADS v2022 category of one nodule (see the module docstring for the rules)."""
    return assess(nodule).category


def exam_category(nodules: Iterable[NoduleForRads]) -> LungRads:
    """The highest nodule category of the exam; 1 (negative) when there is no nodule."""
    return max((nodule_category(n) for n in nodules), default=LungRads.CAT_1, key=lambda c: c.rank)
