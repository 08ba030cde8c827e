"""From network logits to scored regions, CC/MLO links and the exam score.

The network outputs logits; everything here works on them (float64), so that very confident outputs
stay ordered (a float32 sigmoid saturates at 1.0 beyond a logit of about 17).

Scores (fitted on calibration phantoms, :class:`Calibration`):
  * region probability: Platt scaling of the region's peak logit, per kind, fitted on calibration
    candidates (1 = the candidate hits a true lesion of its kind; fitted by
    :func:`training.mammography.evaluate.fit_platt`); region score 1–100 = 100 × it;
  * marks: regions whose peak logit reaches the kind's operating logit (chosen for a false-positive
    rate per image on calibration phantoms);
  * exam score 1–10: the exam's highest calibrated lesion logit placed among the nine decile cut
    points of the same quantity on calibration exams, so each score holds a tenth of them.
Linking: a CC region and an MLO region of the same breast and kind are the same finding when their
distances from the nipple along the nipple axis differ by at most ``link_tolerance_mm``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from models.errors import ModelError

KINDS: tuple[str, str] = ("mass", "calcification_cluster")
#: Candidates start at a peak probability of 0.05.
MIN_LOGIT = math.log(0.05 / 0.95)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    """Logistic function in float64 (no overflow for large |x|)."""
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class Region:
    """A candidate region on one canonical working-resolution image. ``box``: (r0, c0, r1, c1), ends exclusive."""

    kind: str
    box: tuple[float, float, float, float]
    centre_rc: tuple[float, float]
    logit: float  # peak network logit
    area_mm2: float
    depth_mm: float  # distance from the nipple along the nipple axis (columns)
    probability: float = float("nan")  # calibrated probability of a true lesion (Calibration.score)

    @property
    def score(self) -> int:
        return region_score(self.probability if math.isfinite(self.probability) else float(sigmoid(self.logit)))


def region_score(probability: float) -> int:
    """Region score 1–100 from a probability in [0, 1]."""
    return int(np.clip(round(100.0 * float(probability)), 1, 100))


def find_regions(logits: np.ndarray, kind: str, breast: np.ndarray, spacing_mm: float,
                 nipple_rc: tuple[float, float], min_logit: float = MIN_LOGIT) -> list[Region]:
    """Connected regions of a logit map around peaks >= *min_logit*, inside *breast*.

    A region's extent is the pixels around its peak whose probability is at least half the peak's
    (and at least the candidate floor). Sorted by peak logit, highest first.

    Raises:
        ModelError: shapes differ or *kind* is unknown.
    """
    if logits.shape != breast.shape:
        raise ModelError(f"find_regions: logit map {logits.shape} and breast mask {breast.shape} differ")
    if kind not in KINDS:
        raise ModelError(f"find_regions: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    labels, _ = ndimage.label(breast & (logits >= min_logit))
    regions: list[Region] = []
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        inside = labels[sl] == index
        local = np.where(inside, logits[sl].astype(np.float64), -np.inf)
        peak_at = np.unravel_index(int(np.argmax(local)), local.shape)
        peak = float(local[peak_at])
        core_labels, _ = ndimage.label(inside & (sigmoid(local) >= max(float(sigmoid(peak)) / 2.0, 0.05)))
        core = core_labels == core_labels[peak_at]
        rows, cols = np.nonzero(core)
        r0, c0 = rows.min() + sl[0].start, cols.min() + sl[1].start
        r1, c1 = rows.max() + 1 + sl[0].start, cols.max() + 1 + sl[1].start
        centre = (float(rows.mean() + sl[0].start + 0.5), float(cols.mean() + sl[1].start + 0.5))
        regions.append(Region(kind, (float(r0), float(c0), float(r1), float(c1)), centre, peak,
                              float(core.sum()) * spacing_mm**2, abs(nipple_rc[1] + 0.5 - centre[1]) * spacing_mm))
    return sorted(regions, key=lambda r: -r.logit)


@dataclass(frozen=True)
class Platt:
    """Calibrated logit = a × logit + b."""

    a: float = 1.0
    b: float = 0.0

    def logit(self, x: float) -> float:
        return self.a * x + self.b

    def probability(self, x: float) -> float:
        return float(sigmoid(self.logit(x)))


@dataclass(frozen=True)
class Calibration:
    """Operating points fitted on calibration phantoms; stored in the model card (``operating_point``)."""

    operating_logit: dict[str, float]  # kind -> lowest peak logit marked
    platt: dict[str, Platt]  # kind -> region probability
    exam_cut_points: tuple[float, ...]  # nine ascending calibrated logits: decile boundaries of the exam score
    link_tolerance_mm: float = 12.0
    fitted_on: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cuts = self.exam_cut_points
        if len(cuts) != 9 or any(b < a for a, b in zip(cuts, cuts[1:])):
            raise ModelError(f"calibration: exam_cut_points must be 9 ascending values, got {cuts!r}")
        missing = (set(KINDS) - set(self.operating_logit)) | (set(KINDS) - set(self.platt))
        if missing:
            raise ModelError(f"calibration: no operating logit or Platt scaling for {sorted(missing)}")

    def score(self, region: Region) -> Region:
        """*region* with its calibrated probability."""
        return replace(region, probability=self.platt[region.kind].probability(region.logit))

    def marked(self, region: Region) -> bool:
        return region.logit >= self.operating_logit[region.kind]

    def exam_raw(self, peak_logits: Mapping[str, float]) -> float:
        """The exam value ranked by the exam score: the highest calibrated peak logit over the kinds."""
        return max(self.platt[k].logit(v) for k, v in peak_logits.items())

    def exam_score(self, raw: float) -> int:
        """Exam score 1–10 of a raw exam value."""
        return 1 + int(np.searchsorted(np.asarray(self.exam_cut_points), raw, side="right"))

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["exam_cut_points"] = list(self.exam_cut_points)
        return doc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], origin: str) -> Calibration:
        """Raises: ModelError: malformed content (naming *origin*)."""
        try:
            return cls(operating_logit={k: float(v) for k, v in raw["operating_logit"].items()},
                       platt={k: Platt(float(v["a"]), float(v["b"])) for k, v in raw["platt"].items()},
                       exam_cut_points=tuple(float(v) for v in raw["exam_cut_points"]),
                       link_tolerance_mm=float(raw.get("link_tolerance_mm", 12.0)),
                       fitted_on=dict(raw.get("fitted_on", {})))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"calibration in {origin}: {exc!r}") from exc

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Raises: ModelError: missing or malformed file."""
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"calibration file {path}: {exc}") from exc
        return cls.from_json(raw, str(path))


def decile_cut_points(raw_values: Sequence[float]) -> tuple[float, ...]:
    """The nine decile boundaries of *raw_values* (at least 10 values).

    Raises:
        ModelError: fewer than 10 values.
    """
    if len(raw_values) < 10:
        raise ModelError(f"exam score calibration needs >= 10 exams, got {len(raw_values)}")
    return tuple(float(v) for v in np.quantile(np.asarray(raw_values, dtype=np.float64), np.arange(1, 10) / 10.0))


def link_views(cc: Sequence[Region], mlo: Sequence[Region], tolerance_mm: float) -> list[tuple[int, int]]:
    """Pairs (index in *cc*, index in *mlo*) of the same kind whose nipple distances differ by <= *tolerance_mm*.

    Greedy by smallest difference; each region is linked at most once.
    """
    pairs = sorted(
        (abs(a.depth_mm - b.depth_mm), i, j)
        for i, a in enumerate(cc) for j, b in enumerate(mlo)
        if a.kind == b.kind and abs(a.depth_mm - b.depth_mm) <= tolerance_mm
    )
    used_cc: set[int] = set()
    used_mlo: set[int] = set()
    links = []
    for _, i, j in pairs:
        if i not in used_cc and j not in used_mlo:
            used_cc.add(i)
            used_mlo.add(j)
            links.append((i, j))
    return sorted(links)
