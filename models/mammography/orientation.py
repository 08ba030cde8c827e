"""Mammography views and the canonical orientation: THE one place where images are flipped.

Canonical orientation, used by every other module of this package and by the phantoms:
  * the chest wall is on the left (column 0) and the nipple points to increasing columns
    (the row direction, first value of Patient Orientation, is anterior "A");
  * on MLO-like views (MLO, ML, LM, LMO, SIO …) the top of the image is cranial (axilla, pectoral
    muscle at the top left): the column direction contains "F" (foot);
  * on CC-like views (CC, XCCL, XCCM, FB …) the top of the image is lateral: the column direction
    is medial ("R" for a left breast, "L" for a right breast).

How it is decided (:func:`view_orientation`):
  1. Patient Orientation (0020,0020), when present, is authoritative (PS3.3 C.8.11.7: e.g. left CC
     "A\\R", right CC "P\\L", left MLO "A\\FR", right MLO "P\\FL").
  2. Without it, the columns are flipped when the image content says the chest wall is on the right
     (more tissue along the right edge than the left), and the rows are left as stored.
Only flips are used (no rotation); :class:`Orientation` maps pixels and points both ways.

Labels are checked, never guessed (:class:`LabelConflict`, the study is refused):
  * an MLO's Patient Orientation names the breast: its column direction runs from supero-lateral to
    infero-medial, so it is F with the medial side (left breast "FR", right "FL") or, stored upside
    down, H with the lateral side ("HL", "HR"); the other pairing is the other breast;
  * the row direction says on which side the chest wall is (A: left edge, P: right edge); when the
    content clearly shows it on the other edge (:func:`chest_wall_side`), the image was flipped without
    its Patient Orientation being changed (or labelled for another image).
A CC's Patient Orientation does not name the breast (both sides of a CC lie in the image).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from models.errors import ModelError

LOGGER = logging.getLogger(__name__)

class LabelConflict(ModelError):
    """The image's labels contradict each other or the image (laterality, view, Patient Orientation):
    the image is not analysed as either breast and the study is refused with the reason."""


CC_LIKE = frozenset({"CC", "XCCL", "XCCM", "FB"})
MLO_LIKE = frozenset({"MLO", "ML", "LM", "LMO", "SIO"})


@dataclass(frozen=True)
class Orientation:
    """Flips that take a stored image to the canonical orientation (and back: flips are involutions)."""

    flip_rows: bool
    flip_cols: bool

    def to_canonical(self, pixels: np.ndarray) -> np.ndarray:
        """The image in canonical orientation (a view when no flip is needed)."""
        out = pixels
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def to_stored(self, pixels: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_canonical` (same flips)."""
        return self.to_canonical(pixels)

    def point_to_stored(self, row: float, col: float, shape: tuple[int, int]) -> tuple[float, float]:
        """A canonical (row, col) point, in continuous pixel coordinates whose pixel centres are at
        integer + 0.5, to stored coordinates of an image of *shape* (rows, cols). Also its own inverse."""
        r = shape[0] - row if self.flip_rows else row
        c = shape[1] - col if self.flip_cols else col
        return r, c


def _direction_letters(value: str) -> str:
    return str(value).strip().upper()


def view_orientation(laterality: str, view: str, patient_orientation: tuple[str, str] | None,
                     pixels: np.ndarray | None = None) -> Orientation:
    """Flips that bring an image of *laterality* ('L'/'R') and *view* to the canonical orientation.

    *patient_orientation*: the two values of Patient Orientation (row direction, column direction),
    or None when absent; then *pixels* (stored image) decides the left-right flip.

    Raises:
        ModelError: unknown laterality or view; Patient Orientation that contradicts the view
            (e.g. a row direction that is not anterior/posterior); neither orientation nor pixels.
        LabelConflict: an MLO orientation of the other breast, or *pixels* that show the chest wall on the
            edge the orientation does not.
    """
    if laterality not in ("L", "R"):
        raise ModelError(f"laterality {laterality!r}: expected 'L' or 'R'")
    if view not in CC_LIKE | MLO_LIKE:
        raise ModelError(f"view {view!r}: not a CC-like or MLO-like mammography view")
    if patient_orientation is not None and all(patient_orientation):
        rows_dir, cols_dir = (_direction_letters(v) for v in patient_orientation)
        if rows_dir[:1] not in ("A", "P"):
            raise ModelError(f"Patient Orientation {'/'.join(patient_orientation)}: the row direction of a "
                             f"{laterality} {view} must be anterior (A) or posterior (P)")
        flip_cols = rows_dir.startswith("P")
        if view in MLO_LIKE:
            if "F" not in cols_dir and "H" not in cols_dir:
                raise ModelError(f"Patient Orientation {'/'.join(patient_orientation)}: the column direction of "
                                 f"a {laterality} {view} must contain F or H")
            flip_rows = "H" in cols_dir
        else:
            medial = "R" if laterality == "L" else "L"
            lateral = laterality
            if medial not in cols_dir and lateral not in cols_dir:
                raise ModelError(f"Patient Orientation {'/'.join(patient_orientation)}: the column direction of "
                                 f"a {laterality} {view} must be R or L")
            flip_rows = lateral in cols_dir
        if view == "MLO":
            _check_mlo_side(laterality, patient_orientation, cols_dir)
        if pixels is not None:
            _check_chest_wall(laterality, view, patient_orientation, flip_cols, pixels)
        return Orientation(flip_rows=flip_rows, flip_cols=flip_cols)
    if pixels is None:
        raise ModelError(f"{laterality} {view}: no Patient Orientation and no pixels to decide the orientation")
    edge = max(1, pixels.shape[1] // 50)
    left = float(np.mean(pixels[:, :edge]))
    right = float(np.mean(pixels[:, -edge:]))
    LOGGER.debug("%s %s: no Patient Orientation; edge means left %.1f right %.1f", laterality, view, left, right)
    return Orientation(flip_rows=False, flip_cols=right > left)


def _check_mlo_side(laterality: str, patient_orientation: tuple[str, str], cols_dir: str) -> None:
    """Raises LabelConflict when the MLO's column direction belongs to the other breast."""
    sides = {ch for ch in cols_dir if ch in "RL"}
    if len(sides) != 1:
        return  # "F" alone (or both letters): the orientation does not name the breast
    medial = "R" if laterality == "L" else "L"
    expected = medial if "F" in cols_dir else laterality
    if sides != {expected}:
        other = "R" if laterality == "L" else "L"
        raise LabelConflict(f"laterality {laterality} but Patient Orientation {'/'.join(patient_orientation)} is "
                            f"that of a {other} MLO (column direction F with the medial side, or H with the lateral)")


def chest_wall_side(pixels: np.ndarray) -> str | None:
    """'left' or 'right': the stored image edge the breast tissue covers (the chest wall), or None when the
    content does not say clearly. An edge band (2 % of the width) is covered on a row when its mean lies above
    a quarter of the way from the background (2nd percentile) to the tissue (98th percentile); the chest wall is
    the edge covered on at least 30 % more of the rows than the other."""
    edge = max(1, pixels.shape[1] // 50)
    lo, hi = (float(v) for v in np.percentile(pixels, (2, 98)))
    if hi - lo <= 0:
        return None
    threshold = lo + 0.25 * (hi - lo)
    left = float(np.mean(pixels[:, :edge].mean(axis=1) > threshold))
    right = float(np.mean(pixels[:, -edge:].mean(axis=1) > threshold))
    if abs(left - right) < 0.3:
        return None
    return "left" if left > right else "right"


def _check_chest_wall(laterality: str, view: str, patient_orientation: tuple[str, str], flip_cols: bool,
                      pixels: np.ndarray) -> None:
    """Raises LabelConflict when the content puts the chest wall on the edge Patient Orientation does not."""
    side = chest_wall_side(pixels)
    expected = "right" if flip_cols else "left"
    LOGGER.debug("%s %s: chest wall by content %s, by Patient Orientation %s", laterality, view, side, expected)
    if side is not None and side != expected:
        raise LabelConflict(f"{laterality} {view}: Patient Orientation {'/'.join(patient_orientation)} puts the chest "
                            f"wall on the {expected} edge, but the image shows it on the {side} edge (flipped image "
                            f"with unchanged Patient Orientation?)")


def stored_patient_orientation(laterality: str, view: str) -> tuple[str, str]:
    """Patient Orientation of the usual display (chest wall on the right for a right breast): the values
    a modality writes, e.g. ('P', 'L') for a right CC, ('A', 'FR') for a left MLO.

    Raises:
        ModelError: unknown laterality or view.
    """
    if laterality not in ("L", "R") or view not in CC_LIKE | MLO_LIKE:
        raise ModelError(f"{laterality!r} {view!r}: expected laterality L/R and a CC- or MLO-like view")
    rows_dir = "A" if laterality == "L" else "P"
    medial = "R" if laterality == "L" else "L"
    cols_dir = "F" + medial if view in MLO_LIKE else medial
    return rows_dir, cols_dir
