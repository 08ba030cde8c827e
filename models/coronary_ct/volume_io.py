"""From routed series to the axial HU array the calcium measures expect (and back, for masks).

The measures and the network assume a canonical axial layout: index k toward the head
(superior), rows toward posterior, columns toward the patient's left (standard axial
display). A series stored otherwise (feet-first slice order, flipped rows/columns) is
flipped into that layout; :meth:`Canonical.to_source` flips masks back.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imaging.rules import MatchRules
from imaging.series import InstanceHeader, SeriesInfo, choose, group_series
from imaging.volume import Volume
from models.coronary_ct.calcium import ScanGeometry
from models.errors import NoSuitableSeries

LOGGER = logging.getLogger(__name__)

#: Default series rule: gated calcium-score CT, axial, 2-3.5 mm slices.
DEFAULT_SELECT: dict[str, Any] = {"Modality": "^CT$", "Orientation": "^AXIAL$", "SliceThickness": [2.0, 3.5]}
MIN_SLICES = 10
_AXIS_TOLERANCE = 0.985  # cosine: within about 10° of the patient axes


def choose_series(series: Mapping[str, tuple[Path, ...]], rules: Mapping[str, Any], study_uid: str,
                  known: Mapping[Path, InstanceHeader] | None = None) -> SeriesInfo:
    """The series to score: matching *rules*, at least 10 slices; the one closest to 3 mm, then the largest.
    *known*: headers already read (``PipelineRequest.headers``), not read again.

    Raises:
        NoSuitableSeries: no routed series fits, naming the study and the rule.
    """
    files = [f for paths in series.values() for f in paths]
    grouped = group_series(files, skip_unreadable=True, known=known)
    chosen = choose(grouped.values(), MatchRules.parse(dict(rules)), min_files=MIN_SLICES,
                    prefer=lambda s: (abs(float(s.get("SliceThickness", 3.0) or 3.0) - 3.0), -len(s.files)))
    if chosen is None:
        raise NoSuitableSeries(f"study {study_uid}: no series matches {dict(rules)} with >= {MIN_SLICES} slices")
    return chosen


@dataclass(frozen=True)
class Canonical:
    """Which axes of the source volume are flipped to reach the canonical axial layout."""

    flip_k: bool
    flip_r: bool
    flip_c: bool

    @classmethod
    def of(cls, volume: Volume) -> Canonical:
        """The flips for *volume*.

        Raises:
            NoSuitableSeries: not an axial stack within about 10° (oblique, tilted or non-axial).
        """
        axes = volume.affine[:3, :3] / np.linalg.norm(volume.affine[:3, :3], axis=0)
        k_dir, r_dir, c_dir = axes[:, 0], axes[:, 1], axes[:, 2]
        if abs(k_dir[2]) < _AXIS_TOLERANCE or abs(r_dir[1]) < _AXIS_TOLERANCE or abs(c_dir[0]) < _AXIS_TOLERANCE:
            raise NoSuitableSeries(f"series {volume.series_uid}: not an axial stack along the patient axes "
                                   f"(slice {np.round(k_dir, 3)}, row {np.round(r_dir, 3)}, column {np.round(c_dir, 3)})")
        return cls(bool(k_dir[2] < 0), bool(r_dir[1] < 0), bool(c_dir[0] < 0))

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Flip a (k, r, c) array into (or, being an involution, back out of) the canonical layout."""
        index = (slice(None, None, -1 if self.flip_k else 1), slice(None, None, -1 if self.flip_r else 1),
                 slice(None, None, -1 if self.flip_c else 1))
        return array[index]

    def to_source(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.apply(array))


def scan_geometry(volume: Volume) -> ScanGeometry:
    """Pixel spacing (row, column) and slice increment (mm) of a volume."""
    k, r, c = volume.spacing_mm
    return ScanGeometry((float(r), float(c)), float(k))


def canonical_hu(volume: Volume) -> tuple[np.ndarray, Canonical]:
    """(HU array in the canonical layout, the flips used)."""
    canon = Canonical.of(volume)
    return np.ascontiguousarray(canon.apply(volume.voxels)), canon
