"""Nodules of a chest CT phantom: sampled, placed in the lungs, rendered with partial volume.

Each nodule is an ellipsoid with its third axis along z, so its largest axial cross-section is
the central one and the ground truth is analytic: long axis = 2a, short axis = 2b (in-plane
semi-axes a >= b), volume = 4/3 pi a b c. Part-solid nodules are a ground-glass ellipsoid with a
concentric solid core; juxtapleural nodules are solid and touch the pleura with their long axis
parallel to it.

Juxtapleural shapes: by default every juxtapleural nodule is oval or lentiform (in-plane short/long
0.55-0.8, so its shortest semi-axis is at most 0.8 of the longest); with ``round_fraction`` > 0
(:class:`~training.lung_nodules.phantom.PhantomConfig` ``round_juxtapleural``) that fraction is drawn
round (every semi-axis >= 0.9 of the longest). The truth category follows the Lung-RADS v2022 rule from
the KNOWN shape (:func:`pleural_shape`): an ellipsoid is smooth and attached to the pleura by
construction, so a juxtapleural nodule < 10 mm is category 2 when oval or lentiform and keeps its size
category when round.

Rendering integrates the occupancy over each voxel (sub-samples across the pixel and the whole
slice thickness), so thick slices show the partial-volume effect a scanner gives.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid
from models.lung_nodules.lungrads import JuxtapleuralFeatures, NoduleForRads, NoduleType, PleuralShape, nodule_category
from models.lung_nodules.measures import mean_diameter_mm
from models.lung_nodules.shape import LENTIFORM_RATIO, ROUND_RATIO

ROUND_MIN_RATIO = 0.9  # a round juxtapleural phantom nodule: every semi-axis >= this fraction of the longest


class Kind(enum.StrEnum):
    """How a phantom nodule is drawn (juxtapleural is a solid nodule touching the pleura)."""

    SOLID = "solid"
    PART_SOLID = "part-solid"
    GROUND_GLASS = "ground-glass"
    JUXTAPLEURAL = "juxtapleural"


@dataclass(frozen=True)
class NoduleShape:
    """Geometry and density of one nodule (mm, HU). ``core`` scales the semi-axes of the solid core."""

    kind: Kind
    centre: np.ndarray  # LPS mm
    semi_axes: tuple[float, float, float]  # a (long, in-plane), b (short, in-plane), c (z)
    angle_rad: float  # direction of the long axis in the axial plane, from +x
    hu: float  # solid nodule, or ground-glass component
    core: float = 0.0  # part-solid: core semi-axes = core * semi_axes
    core_hu: float = 0.0

    @property
    def nodule_type(self) -> NoduleType:
        if self.kind is Kind.PART_SOLID:
            return NoduleType.PART_SOLID
        if self.kind is Kind.GROUND_GLASS:
            return NoduleType.GROUND_GLASS
        return NoduleType.SOLID

    def bbox_mm(self) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.semi_axes) + 0.5
        return self.centre - r, self.centre + r


def pleural_shape(semi_axes: tuple[float, float, float]) -> PleuralShape:
    """The known shape of an ellipsoid, with the thresholds :mod:`models.lung_nodules.shape` measures by.

    Round when the shortest semi-axis is >= ``ROUND_RATIO`` (0.85) of the longest; otherwise lentiform when
    the middle one is >= ``LENTIFORM_RATIO`` (0.8) of the longest, else oval. The measurement's "uncertain"
    band (0.75-0.85) is a margin for measuring an outline; the truth knows the axes and has none.
    """
    short, middle, long = sorted(semi_axes)
    if short >= ROUND_RATIO * long:
        return PleuralShape.ROUND
    return PleuralShape.LENTIFORM if middle >= LENTIFORM_RATIO * long else PleuralShape.OVAL


def sample_shape(rng: np.random.Generator, kind: Kind, diameter_mm: tuple[float, float],
                 round_fraction: float = 0.0) -> NoduleShape:
    """Size (log-uniform mean diameter), elongation and densities; the centre is set by :func:`place`.

    *round_fraction*: the chance that a juxtapleural nodule is round; 0 draws nothing more from *rng*
    (the phantoms of every seed stay as they were).
    """
    mean = float(np.exp(rng.uniform(np.log(diameter_mm[0]), np.log(diameter_mm[1]))))
    if kind is Kind.JUXTAPLEURAL and round_fraction > 0 and rng.uniform() < round_fraction:
        mean = min(mean, 14.0)
        ratio = rng.uniform(ROUND_MIN_RATIO, 1.0)
        a = mean / (1.0 + ratio)
        return NoduleShape(kind, np.zeros(3), (a, a * ratio, a * rng.uniform(ROUND_MIN_RATIO, 1.0)),
                           rng.uniform(0, np.pi), rng.uniform(-10.0, 60.0))
    if kind is Kind.JUXTAPLEURAL:
        mean = min(mean, 14.0)
        ratio = rng.uniform(0.55, 0.8)
    else:
        ratio = rng.uniform(0.72, 1.0)
    a = mean / (1.0 + ratio)
    b = a * ratio
    c = rng.uniform(0.8, 1.1) * (a + b) / 2.0
    if kind is Kind.GROUND_GLASS:
        return NoduleShape(kind, np.zeros(3), (a, b, c), rng.uniform(0, np.pi), rng.uniform(-700.0, -540.0))
    if kind is Kind.PART_SOLID:
        return NoduleShape(kind, np.zeros(3), (a, b, c), rng.uniform(0, np.pi), rng.uniform(-680.0, -560.0),
                           core=rng.uniform(0.3, 0.65), core_hu=rng.uniform(-20.0, 50.0))
    return NoduleShape(kind, np.zeros(3), (a, b, c), rng.uniform(0, np.pi), rng.uniform(-10.0, 60.0))


def _local_distance(lung: np.ndarray, grid: Grid, centre: np.ndarray, radius_mm: float
                    ) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """Distance (mm) to the nearest non-lung voxel in a box of *radius_mm* around *centre*."""
    idx = np.round(grid.to_index(centre)).astype(int)
    half = np.ceil(radius_mm / np.array(grid.spacing)).astype(int)
    start = np.maximum(idx - half, 0)
    stop = np.minimum(idx + half + 1, lung.shape)
    if np.any(stop - start < 3):
        return None
    sl = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    return ndimage.distance_transform_edt(lung[sl], sampling=grid.spacing), sl


def place(rng: np.random.Generator, shape: NoduleShape, lung: np.ndarray, grid: Grid, taken: list[NoduleShape],
          vessels: np.ndarray, tries: int = 60) -> NoduleShape | None:
    """A copy of *shape* moved to a free place in the lung (touching the pleura if juxtapleural), or None."""
    candidates = np.argwhere(lung[::4, ::4, ::4]) * 4
    if len(candidates) == 0:
        return None
    a, b, c = shape.semi_axes
    for _ in range(tries):
        index = np.minimum(candidates[rng.integers(len(candidates))] + rng.uniform(0, 4, 3), np.array(lung.shape) - 1)
        centre = grid.to_mm(index)
        local = _local_distance(lung, grid, centre, max(a, c) + 12.0)
        if local is None:
            continue
        dist, sl = local
        if shape.kind is Kind.JUXTAPLEURAL:
            placed = _touch_pleura(shape, dist, sl, grid, rng)
        else:
            here = dist[tuple(d // 2 for d in dist.shape)]
            placed = _moved(shape, centre) if here >= max(a, c) + 2.0 else None
        if placed is None or not _in_grid(placed, grid) or _overlaps(placed, taken) \
                or _on_big_vessel(placed, vessels, grid):
            continue
        return placed
    return None


def _in_grid(shape: NoduleShape, grid: Grid) -> bool:
    """The whole nodule (plus one voxel) lies inside the volume."""
    lo, hi = shape.bbox_mm()
    idx = np.stack([grid.to_index(lo), grid.to_index(hi)])
    return bool(np.all(idx.min(0) >= 1) and np.all(idx.max(0) <= np.array(grid.shape) - 2))


def _moved(shape: NoduleShape, centre: np.ndarray, angle: float | None = None) -> NoduleShape:
    return NoduleShape(shape.kind, np.asarray(centre, dtype=np.float64), shape.semi_axes,
                       shape.angle_rad if angle is None else angle, shape.hu, shape.core, shape.core_hu)


def _touch_pleura(shape: NoduleShape, dist: np.ndarray, sl: tuple[slice, ...], grid: Grid,
                  rng: np.random.Generator) -> NoduleShape | None:
    """Centre at distance b (+0.3 mm) from the pleura, long axis parallel to it, z extent inside the lung."""
    a, b, c = shape.semi_axes
    ring = np.argwhere(np.abs(dist - (b + 0.3)) < 0.5 * min(grid.spacing[1:]) + 0.2)
    if len(ring) == 0:
        return None
    local = ring[rng.integers(len(ring))]
    grad = np.array([np.gradient(dist, grid.spacing[k], axis=k)[tuple(local)] for k in range(3)])
    if abs(grad[0]) > 0.5 * np.linalg.norm(grad) or np.linalg.norm(grad[1:]) < 1e-6:
        return None  # pleura facing up or down (dome, apex): not an axial juxtapleural nodule
    normal_xy = np.array([grad[2], grad[1]])  # +x, +y components (array axes 2, 1)
    angle = float(np.arctan2(normal_xy[1], normal_xy[0]) + np.pi / 2)  # long axis along the pleura
    index = np.array([s.start for s in sl]) + local
    placed = _moved(shape, grid.to_mm(index), angle)
    return placed if _inside(placed, dist, sl, grid) else None


def _inside(shape: NoduleShape, dist: np.ndarray, sl: tuple[slice, ...], grid: Grid) -> bool:
    """True when the ellipsoid's voxels (shrunk by 0.3 mm) all lie in the lung."""
    occ, box = occupancy(shape, grid, (shape.semi_axes[0] - 0.3) / shape.semi_axes[0], samples=1)
    if occ is None:
        return False
    offs = [b.start - s.start for b, s in zip(box, sl, strict=True)]
    if min(offs) < 0 or any(o + n > d for o, n, d in zip(offs, occ.shape, dist.shape, strict=True)):
        return False
    region = dist[tuple(slice(o, o + n) for o, n in zip(offs, occ.shape, strict=True))]
    return bool(np.all(region[occ > 0.5] > 0))


def _overlaps(shape: NoduleShape, taken: list[NoduleShape]) -> bool:
    return any(np.linalg.norm(shape.centre - t.centre) < max(shape.semi_axes) + max(t.semi_axes) + 4.0 for t in taken)


def _on_big_vessel(shape: NoduleShape, vessels: np.ndarray, grid: Grid) -> bool:
    """More than 3 % of the nodule's voxels on a vessel would blur the ground truth."""
    occ, box = occupancy(shape, grid, 1.0, samples=1)
    if occ is None:
        return True
    inside = occ > 0.5
    return bool(inside.any() and vessels[box][inside].mean() > 0.03)


def occupancy(shape: NoduleShape, grid: Grid, scale: float = 1.0, samples: int = 3
              ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
    """Fraction of each voxel inside the ellipsoid (semi-axes x *scale*), over its bounding box.

    Sub-samples: *samples* per pixel side in-plane and enough along z to cover the slice thickness.
    Returns (None, ()) when the box falls outside the grid.
    """
    lo, hi = shape.bbox_mm()
    i0 = np.floor(np.minimum(grid.to_index(lo), grid.to_index(hi))).astype(int) - 1
    i1 = np.ceil(np.maximum(grid.to_index(lo), grid.to_index(hi))).astype(int) + 2
    start, stop = np.maximum(i0, 0), np.minimum(i1, grid.shape)
    if np.any(stop <= start):
        return None, ()
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    sz, sy, sx = grid.spacing
    nz = max(samples, int(math.ceil(sz / 0.3))) if samples > 1 else 1
    ox, oy, oz = grid.affine[:3, 3]
    a, b, c = (s * scale for s in shape.semi_axes)
    cos, sin = math.cos(shape.angle_rad), math.sin(shape.angle_rad)
    occ = np.zeros(tuple(int(e - s) for s, e in zip(start, stop, strict=True)), dtype=np.float32)
    offsets_xy = (np.arange(samples) + 0.5) / samples - 0.5
    offsets_z = (np.arange(nz) + 0.5) / nz - 0.5
    z = oz + sz * np.arange(start[0], stop[0])
    y = oy + sy * np.arange(start[1], stop[1])
    x = ox + sx * np.arange(start[2], stop[2])
    for dz in offsets_z:
        zz = ((z + dz * sz - shape.centre[2]) / c)[:, None, None] ** 2
        for dy in offsets_xy:
            yy = (y + dy * sy - shape.centre[1])[None, :, None]
            for dx in offsets_xy:
                xx = (x + dx * sx - shape.centre[0])[None, None, :]
                u = (xx * cos + yy * sin) / a
                v = (-xx * sin + yy * cos) / b
                occ += (u * u + v * v + zz <= 1.0)
    occ /= nz * samples * samples
    return occ, box


def render(volume: np.ndarray, labels: np.ndarray, solid_labels: np.ndarray, grid: Grid, shape: NoduleShape,
           label: int) -> None:
    """Composite the nodule into *volume* (HU) and write its ground-truth masks (occupancy >= 0.5)."""
    occ, box = occupancy(shape, grid)
    if occ is None:
        return
    region = volume[box]
    if shape.kind is Kind.PART_SOLID:
        core, _ = occupancy(shape, grid, shape.core)
        if core is None:  # cannot happen: same box as the outer ellipsoid
            return
        region[...] = region * (1 - occ) + occ * shape.hu + core * (shape.core_hu - shape.hu)
        solid_labels[box][core >= 0.5] = label
    else:
        region[...] = region * (1 - occ) + occ * shape.hu
        if shape.kind is not Kind.GROUND_GLASS:
            solid_labels[box][occ >= 0.5] = label
    labels[box][occ >= 0.5] = label


def truth(shape: NoduleShape, label: int, lung_z: tuple[float, float]) -> dict[str, Any]:
    """Ground-truth record of one nodule (the JSON the phantom ships)."""
    a, b, c = shape.semi_axes
    mean = mean_diameter_mm(round(2 * a, 3), round(2 * b, 3))
    solid_mean = 0.0
    if shape.kind is Kind.PART_SOLID:
        solid_mean = mean_diameter_mm(round(2 * a * shape.core, 3), round(2 * b * shape.core, 3))
    elif shape.kind is not Kind.GROUND_GLASS:
        solid_mean = mean
    juxta = shape.kind is Kind.JUXTAPLEURAL
    features = JuxtapleuralFeatures(smooth=True, shape=pleural_shape(shape.semi_axes)) if juxta else None
    rads = nodule_category(NoduleForRads(shape.nodule_type, mean, solid_mean if shape.kind is Kind.PART_SOLID
                                         else 0.0, juxtapleural=juxta, features=features))
    third = (lung_z[1] - lung_z[0]) / 3.0
    zone = "lower" if shape.centre[2] < lung_z[0] + third else ("middle" if shape.centre[2] < lung_z[1] - third
                                                                 else "upper")
    record: dict[str, Any] = {
        "label": label, "kind": str(shape.kind), "type": str(shape.nodule_type), "juxtapleural": juxta,
        "centre_mm": [round(float(v), 2) for v in shape.centre],
        "long_axis_mm": round(2 * a, 2), "short_axis_mm": round(2 * b, 2), "mean_diameter_mm": mean,
        "volume_mm3": round(4.0 / 3.0 * math.pi * a * b * c, 1), "solid_diameter_mm": solid_mean,
        "hu": round(shape.hu, 1), "side": "right" if shape.centre[0] < 0 else "left", "zone": zone,
        "lung_rads": rads.value,
    }
    if features is not None:  # only juxtapleural records carry it: the other kinds' records stay as they were
        record["pleural_shape"] = features.shape.value
    return record
