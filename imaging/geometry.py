"""Slice geometry in patient LPS: orientation labels, sorting along the normal, spacing checks, affines.

Conventions used everywhere in :mod:`imaging`:

* arrays are indexed ``(k, r, c)``: slice, row, column (numpy order);
* an *affine* is a 4×4 matrix mapping the index ``(k, r, c, 1)`` to patient
  coordinates in millimetres, LPS (DICOM: +x to the patient's left, +y
  posterior, +z head);
* column index ``c`` moves along the row direction cosines (Image Orientation
  (Patient) values 1–3) by Pixel Spacing[1]; row index ``r`` moves along the
  column direction cosines (values 4–6) by Pixel Spacing[0];
* slice index ``k`` increases along the slice normal ``row × column``.

Everything here is pure numpy, no I/O.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imaging.errors import GeometryError

#: Two orientations are the same when every direction cosine differs by less than this.
ORIENTATION_TOLERANCE = 1e-3
#: Two slices share a position when their distances along the normal differ by less than this (mm).
POSITION_TOLERANCE_MM = 0.01
#: Spacing is uniform when every step is within max(this, 1 % of the median step) of the median (mm).
SPACING_TOLERANCE_MM = 0.005
#: Slice origins must lie on a line within this distance (mm); otherwise the stack is not a volume.
COLLINEAR_TOLERANCE_MM = 0.05
#: A stack whose slice step deviates from the normal by more than this (degrees) is reported as tilted.
TILT_TOLERANCE_DEG = 0.01
#: The normal's largest LPS component must be at least cos(30°) to be labelled axial/coronal/sagittal.
_LABEL_MIN_COSINE = math.cos(math.radians(30.0))


class IssueKind(str, enum.Enum):
    """Irregularities found while stacking slices."""

    VARYING_SPACING = "varying spacing"
    MISSING_SLICES = "missing slices"
    DUPLICATE_POSITIONS = "duplicate positions"
    GANTRY_TILT = "gantry tilt"
    MIXED_ORIENTATIONS = "mixed orientations"
    REGRIDDED = "regridded"


@dataclass(frozen=True)
class GeometryIssue:
    """One irregularity; *value* is its size (mm spread, slice count or degrees, see *message*)."""

    kind: IssueKind
    message: str
    value: float = 0.0


@dataclass(frozen=True, eq=False)
class StackPlan:
    """How a set of parallel slices becomes a volume.

    *order*: input indices sorted along the normal. *distances_mm*: their
    distances along the normal (ascending). *grid_mm*: the distances of the
    output slices (equal to *distances_mm* unless regridded). *affine*: (k, r, c) → LPS.
    """

    order: tuple[int, ...]
    distances_mm: np.ndarray
    grid_mm: np.ndarray
    affine: np.ndarray
    issues: tuple[GeometryIssue, ...]


def direction_cosines(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, normal) unit vectors from Image Orientation (Patient).

    Raises:
        GeometryError: the six values are not two orthogonal unit vectors (tolerance 1e-3).
    """
    values = np.asarray(iop, dtype=np.float64)
    if values.shape != (6,):
        raise GeometryError(f"Image Orientation (Patient) {list(iop)}: expected 6 values")
    row, col = values[:3], values[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise GeometryError(f"Image Orientation (Patient) {list(iop)}: not two orthogonal unit vectors")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def orientation_label(iop: Sequence[float]) -> str:
    """``AXIAL``, ``CORONAL``, ``SAGITTAL`` (normal within 30° of an LPS axis) or ``OBLIQUE``."""
    normal = direction_cosines(iop)[2]
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) < _LABEL_MIN_COSINE:
        return "OBLIQUE"
    return ("SAGITTAL", "CORONAL", "AXIAL")[axis]


def same_orientation(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two Image Orientation (Patient) values agree within :data:`ORIENTATION_TOLERANCE`."""
    return bool(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))) < ORIENTATION_TOLERANCE)


def check_orientations(iops: Sequence[Sequence[float]], what: str) -> None:
    """Raise unless every slice has the orientation of the first.

    Raises:
        GeometryError: naming *what*, the orientations found and how many slices have each.
    """
    first = iops[0]
    if all(same_orientation(first, iop) for iop in iops):
        return
    labels: dict[str, int] = {}
    for iop in iops:
        label = orientation_label(iop)
        labels[label] = labels.get(label, 0) + 1
    found = ", ".join(f"{n} {label.lower()}" for label, n in sorted(labels.items()))
    raise GeometryError(f"{what}: mixed orientations ({found} slices); a volume needs parallel slices")


def cluster_positions(distances_mm: np.ndarray) -> list[list[int]]:
    """Indices grouped by position along the normal (within :data:`POSITION_TOLERANCE_MM`), ascending."""
    order = np.argsort(distances_mm, kind="stable")
    clusters: list[list[int]] = []
    last = -np.inf
    for idx in order:
        d = float(distances_mm[idx])
        if clusters and d - last < POSITION_TOLERANCE_MM:
            clusters[-1].append(int(idx))
        else:
            clusters.append([int(idx)])
        last = d
    return clusters


def plane_affine(iop: Sequence[float], pixel_spacing: Sequence[float], origin: Sequence[float],
                 step: np.ndarray) -> np.ndarray:
    """4×4 affine (k, r, c) → LPS for slices with orientation *iop*, Pixel Spacing (row, column) in mm,
    first-slice origin (mm) and slice step vector *step* (mm per slice index)."""
    row, col, _ = direction_cosines(iop)
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * float(pixel_spacing[0])
    affine[:3, 2] = row * float(pixel_spacing[1])
    affine[:3, 3] = np.asarray(origin, dtype=np.float64)
    return affine


def plan_stack(positions: np.ndarray, iop: Sequence[float], pixel_spacing: Sequence[float],
               thickness_mm: float | None, *, what: str, regrid: bool = False) -> StackPlan:
    """Sort parallel slices along the normal and build their affine.

    *positions*: (n, 3) Image Position (Patient) in mm. Missing slices and
    varying spacing are reported in the plan's issues; with ``regrid=False``
    they raise, with ``regrid=True`` the output grid is uniform at the median step.

    Raises:
        GeometryError: duplicate positions, origins not on a line, or (without
            *regrid*) missing slices / varying spacing, naming *what* and the values.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    normal = direction_cosines(iop)[2]
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    d = distances[order]
    if len(d) > 1 and float(np.min(np.diff(d))) < POSITION_TOLERANCE_MM:
        n_dup = len(d) - len(cluster_positions(distances))
        raise GeometryError(f"{what}: {n_dup} slices share a position with another slice "
                            "(multi-phase or multi-echo series: split it first)")
    if len(d) == 1:
        step = normal * float(thickness_mm or 1.0)
        affine = plane_affine(iop, pixel_spacing, positions[0], step)
        return StackPlan((0,), d, d.copy(), affine, ())
    sorted_pos = positions[order]
    slope = (sorted_pos[-1] - sorted_pos[0]) / (d[-1] - d[0])  # mm of position per mm along the normal
    residual = sorted_pos - (sorted_pos[0] + np.outer(d - d[0], slope))
    worst = float(np.max(np.linalg.norm(residual, axis=1)))
    if worst > COLLINEAR_TOLERANCE_MM:
        raise GeometryError(f"{what}: slice origins are not on a line (off by up to {worst:.2f} mm)")
    issues: list[GeometryIssue] = []
    tilt_deg = math.degrees(math.acos(min(1.0, 1.0 / float(np.linalg.norm(slope)))))
    if tilt_deg > TILT_TOLERANCE_DEG:
        issues.append(GeometryIssue(IssueKind.GANTRY_TILT,
                                    f"{what}: slices are sheared by {tilt_deg:.2f} degrees (gantry tilt); "
                                    "the affine keeps the shear", tilt_deg))
    grid, spacing_issues = _regular_grid(d, what, regrid)
    issues.extend(spacing_issues)
    nominal = float(grid[1] - grid[0]) if len(grid) > 1 else float(d[1] - d[0])
    affine = plane_affine(iop, pixel_spacing, sorted_pos[0], slope * nominal)
    return StackPlan(tuple(int(i) for i in order), d, grid, affine, tuple(issues))


def _regular_grid(d: np.ndarray, what: str, regrid: bool) -> tuple[np.ndarray, list[GeometryIssue]]:
    """Uniform output distances for sorted distances *d*, and the spacing issues found."""
    steps = np.diff(d)
    nominal = float(np.median(steps))
    tolerance = max(SPACING_TOLERANCE_MM, 0.01 * nominal)
    if float(np.max(np.abs(steps - nominal))) <= tolerance:
        return d, []
    ratio = steps / nominal
    whole = np.round(ratio)
    if np.all(np.abs(ratio - whole) * nominal <= tolerance) and np.all(whole >= 1):
        missing = int(np.sum(whole - 1))
        gaps = [f"{d[i]:.2f}-{d[i + 1]:.2f}" for i in np.flatnonzero(whole > 1)]
        issue = GeometryIssue(IssueKind.MISSING_SLICES,
                              f"{what}: {missing} slices missing at {nominal:.3f} mm spacing "
                              f"(gaps at {', '.join(gaps[:5])} mm along the normal)", float(missing))
    else:
        lo, hi = float(np.min(steps)), float(np.max(steps))
        issue = GeometryIssue(IssueKind.VARYING_SPACING,
                              f"{what}: slice spacing varies ({lo:.3f}-{hi:.3f} mm)", hi - lo)
    if not regrid:
        raise GeometryError(f"{issue.message}; load with regrid=True to interpolate a uniform grid")
    count = int(math.floor((d[-1] - d[0]) / nominal + 0.5)) + 1
    grid = d[0] + nominal * np.arange(count)
    regridded = GeometryIssue(IssueKind.REGRIDDED,
                              f"{what}: resampled to {count} slices at {nominal:.3f} mm by linear interpolation",
                              float(count))
    return grid, [issue, regridded]


def index_to_lps(affine: np.ndarray, indices_krc: np.ndarray) -> np.ndarray:
    """Patient LPS coordinates (mm) of (n, 3) indices (k, r, c)."""
    idx = np.asarray(indices_krc, dtype=np.float64).reshape(-1, 3)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def lps_to_index(affine: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    """Continuous indices (k, r, c) of (n, 3) LPS points (mm)."""
    pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
    return np.linalg.solve(affine[:3, :3], (pts - affine[:3, 3]).T).T


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (k, r, c) in mm.

    Row and column spacing are the lengths of the affine's in-plane columns; the
    slice spacing is the distance between slice planes (along the normal), which
    differs from the slice step length when the stack is sheared (gantry tilt).
    """
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    between_planes = abs(float(np.linalg.det(affine[:3, :3]))) / float(norms[1] * norms[2])
    return between_planes, float(norms[1]), float(norms[2])


@dataclass(frozen=True, eq=False)
class Grid:
    """Shape of a 3D array and its index -> LPS mm affine: the geometry of a :class:`imaging.volume.Volume`
    (``Volume.grid``) without its voxels, and of the grids a pipeline resamples to. The array's own
    axis order is kept (``(i0, i1, i2, 1)`` -> LPS mm); spacing along an axis is the norm of its column.

    Raises:
        GeometryError: on construction, for a shape without three sizes >= 1 or a singular affine.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise GeometryError(f"grid shape {self.shape}: need three sizes >= 1")
        if self.affine.shape != (4, 4) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise GeometryError("grid affine must be an invertible 4x4 matrix")

    @classmethod
    def axial(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
              origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Grid:
        """Axial grid: i0 -> +z (slice), i1 -> +y (row), i2 -> +x (column); *origin_mm* is voxel (0,0,0) in (x, y, z)."""
        sz, sy, sx = spacing_mm
        affine = np.array([[0.0, 0.0, sx, origin_mm[0]],
                           [0.0, sy, 0.0, origin_mm[1]],
                           [sz, 0.0, 0.0, origin_mm[2]],
                           [0.0, 0.0, 0.0, 1.0]])
        return cls(tuple(int(s) for s in shape), affine)  # type: ignore[arg-type]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along the array axes (mm)."""
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(s[0]), float(s[1]), float(s[2])

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def to_mm(self, index: np.ndarray) -> np.ndarray:
        """LPS mm of voxel indices ``(..., 3)`` (fractional allowed)."""
        index = np.asarray(index, dtype=np.float64)
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def to_index(self, mm: np.ndarray) -> np.ndarray:
        """Fractional voxel indices ``(..., 3)`` of LPS points."""
        inv = np.linalg.inv(self.affine)
        mm = np.asarray(mm, dtype=np.float64)
        return mm @ inv[:3, :3].T + inv[:3, 3]

    def crop(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> Grid:
        """The sub-grid ``[start, stop)`` (same orientation, shifted origin)."""
        affine = self.affine.copy()
        affine[:3, 3] = self.to_mm(np.array(start, dtype=np.float64))
        return Grid(tuple(b - a for a, b in zip(start, stop, strict=True)), affine)  # type: ignore[arg-type]

    def resampled(self, spacing_mm: tuple[float, float, float]) -> Grid:
        """Same orientation and first voxel, new spacing; stays within the same extent (sizes rounded down)."""
        old = np.array(self.spacing)
        new = np.array(spacing_mm, dtype=np.float64)
        shape = tuple(max(1, int(np.floor((n - 1) * o / s + 1e-6)) + 1) for n, o, s in zip(self.shape, old, new, strict=True))
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, :3] * (new / old)
        return Grid(shape, affine)  # type: ignore[arg-type]
