"""Chest anatomy of a CT phantom, in patient mm (LPS: +x left, +y posterior, +z head).

Body (skin, fat, muscle, mediastinum), two lungs with diaphragm domes, heart, spine, ribs,
airways (trachea, bronchi) and pulmonary vessel trees. The vessels, airway walls and ribs are
the confounders a nodule detector must learn to ignore: a vessel cut across looks like a nodule
on one axial image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.lung_nodules.geometry import Grid

HU_AIR = -1000.0
HU_LUNG = -865.0
HU_FAT = -100.0
HU_SOFT = 40.0
HU_BLOOD = 40.0
HU_BONE = 450.0
HU_AIRWAY_WALL = -40.0


@dataclass(frozen=True)
class Body:
    """Patient size and lung geometry (mm)."""

    half_width: float
    half_depth: float
    fat_mm: float
    lung_base_z: float
    lung_apex_z: float
    dome_mm: float

    @classmethod
    def random(cls, rng: np.random.Generator, width_mm: tuple[float, float]) -> Body:
        half_width = rng.uniform(*width_mm) / 2.0
        half_depth = half_width * rng.uniform(0.62, 0.75)
        height = rng.uniform(190.0, 250.0) * half_width / 170.0
        return cls(half_width, half_depth, rng.uniform(6.0, 25.0) * half_width / 170.0,
                   -height / 2.0, height / 2.0, rng.uniform(25.0, 40.0))

    def lung_centre(self, side: int) -> tuple[float, float]:
        """(x, y) centre of the lung on *side* (-1 right, +1 left)."""
        return side * self.half_width * 0.42, self.half_depth * 0.06

    def lung_axes(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In-plane semi-axes of the lungs at heights *z* (0 above the apex)."""
        top = np.clip((self.lung_apex_z - z) / (0.45 * (self.lung_apex_z - self.lung_base_z)), 0.0, 1.0)
        f = np.sqrt(top) * (z >= self.lung_base_z - self.dome_mm)
        return self.half_width * 0.36 * f, self.half_depth * 0.66 * f


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float, p: float = 2.0) -> np.ndarray:
    if ax <= 0 or ay <= 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    return np.abs((x - cx) / ax) ** p + np.abs((y - cy) / ay) ** p <= 1.0


def lung_slice(body: Body, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
    """Boolean lung mask on one axial plane (x: row vector, y: column vector of mm)."""
    ax_arr, ay_arr = body.lung_axes(np.array([z]))
    ax, ay = float(ax_arr[0]), float(ay_arr[0])
    mask = np.zeros((y.shape[0], x.shape[1]), dtype=bool)
    for side in (-1, 1):
        cx, cy = body.lung_centre(side)
        inside = _ellipse(x, y, cx, cy, ax, ay, 2.4)
        r2 = ((x - cx) / max(body.half_width * 0.36, 1e-6)) ** 2 + ((y - cy) / (body.half_depth * 0.66)) ** 2
        dome_top = body.lung_base_z + (body.dome_mm + (8.0 if side < 0 else 0.0)) * np.clip(1.0 - r2, 0.0, 1.0)
        inside &= z >= dome_top - body.dome_mm * 0.6
        inside &= side * x > body.half_width * 0.10  # mediastinum
        mask |= inside
    heart = _heart(body, x, y, z)
    return mask & ~heart


def _heart(body: Body, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
    zc = body.lung_base_z + 0.22 * (body.lung_apex_z - body.lung_base_z)
    hz = 0.3 * (body.lung_apex_z - body.lung_base_z)
    f = 1.0 - ((z - zc) / hz) ** 2
    if f <= 0:
        return np.zeros((y.shape[0], x.shape[1]), dtype=bool)
    s = np.sqrt(f)
    return _ellipse(x, y, body.half_width * 0.12, -body.half_depth * 0.22,
                    body.half_width * 0.42 * s, body.half_depth * 0.5 * s)


def render_slice(body: Body, x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(HU image, lung mask) of one axial plane without tubes, nodules, blur or noise."""
    hw, hd = body.half_width, body.half_depth
    shoulders = 1.0 + 0.12 * np.clip((z - body.lung_apex_z + 40.0) / 60.0, 0.0, 1.0)
    img = np.full((y.shape[0], x.shape[1]), HU_AIR, dtype=np.float32)
    outer = _ellipse(x, y, 0.0, 0.0, hw * shoulders, hd, 2.2)
    img[outer] = HU_FAT
    fat = body.fat_mm
    img[_ellipse(x, y, 0.0, 0.0, hw * shoulders - fat, hd - fat * 0.8, 2.2)] = HU_SOFT
    spine_y = hd * 0.62
    img[_ellipse(x, y, 0.0, spine_y, hw * 0.12, hd * 0.2)] = HU_BONE * 0.6
    img[_ellipse(x, y, 0.0, spine_y + hd * 0.28, hw * 0.05, hd * 0.07)] = HU_SOFT - 20.0
    lung = lung_slice(body, x, y, z)
    img[lung] = HU_LUNG
    return img, lung


@dataclass(frozen=True)
class Segment:
    """A straight tube from *p0* to *p1* (mm, LPS) with *radius_mm*."""

    p0: np.ndarray
    p1: np.ndarray
    radius_mm: float


def render_tube(volume: np.ndarray, grid: Grid, seg: Segment, value: float, within: np.ndarray | None = None,
                extra_mm: float = 0.0) -> None:
    """Set *value* in the voxels of *volume* whose centre lies within ``radius + extra_mm`` of the segment.

    *grid* must be axial (see :meth:`Grid.axial`). *within* (bool, same shape) limits the voxels changed.
    """
    r = seg.radius_mm + extra_mm
    lo = np.minimum(seg.p0, seg.p1) - r
    hi = np.maximum(seg.p0, seg.p1) + r
    i_lo = np.floor(grid.to_index(lo)).astype(int)
    i_hi = np.ceil(grid.to_index(hi)).astype(int) + 1
    start = np.maximum(np.minimum(i_lo, i_hi - 1), 0)
    stop = np.minimum(np.maximum(i_lo, i_hi), np.array(volume.shape))
    if np.any(stop <= start):
        return
    sl = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    z = (oz + sz * np.arange(start[0], stop[0]))[:, None, None]
    y = (oy + sy * np.arange(start[1], stop[1]))[None, :, None]
    x = (ox + sx * np.arange(start[2], stop[2]))[None, None, :]
    d = seg.p1 - seg.p0
    length2 = float(d @ d) or 1e-9
    t = np.clip(((x - seg.p0[0]) * d[0] + (y - seg.p0[1]) * d[1] + (z - seg.p0[2]) * d[2]) / length2, 0.0, 1.0)
    dist2 = (x - seg.p0[0] - t * d[0]) ** 2 + (y - seg.p0[1] - t * d[1]) ** 2 + (z - seg.p0[2] - t * d[2]) ** 2
    mask = dist2 <= r * r
    if within is not None:
        mask &= within[sl]
    volume[sl][mask] = value


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def _turn(direction: np.ndarray, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """*direction* rotated by *angle_deg* around a random perpendicular axis."""
    perp = _unit(np.cross(direction, rng.normal(size=3)))
    a = np.deg2rad(angle_deg)
    return _unit(np.cos(a) * direction + np.sin(a) * perp)


def vessel_tree(body: Body, rng: np.random.Generator, side: int) -> list[Segment]:
    """Pulmonary vessels of one lung: a few trees from the hilum, branching outward, tapering."""
    cx, cy = body.lung_centre(side)
    mid_z = body.lung_base_z + 0.55 * (body.lung_apex_z - body.lung_base_z)
    hilum = np.array([side * body.half_width * 0.16, cy, mid_z])
    segments: list[Segment] = []
    for k in range(6):
        root_dir = _unit(np.array([side * 1.0, rng.uniform(-0.9, 0.9), (k - 2.5) * 0.45 + rng.uniform(-0.3, 0.3)]))
        stack = [(hilum + rng.normal(0, 4.0, 3), root_dir, rng.uniform(3.5, 5.0), 0)]
        while stack:
            p0, direction, radius, gen = stack.pop()
            length = rng.uniform(7.0, 11.0) * radius + 6.0
            p1 = p0 + direction * length
            segments.append(Segment(p0, p1, radius))
            if radius < 0.7 or gen >= 7:
                continue
            for sign in (-1.0, 1.0):
                child = _turn(direction, sign * rng.uniform(18.0, 40.0), rng)
                stack.append((p1, child, radius * rng.uniform(0.68, 0.8), gen + 1))
    return segments


def vessel_fragments(points_mm: np.ndarray, rng: np.random.Generator, count: int) -> list[Segment]:
    """Short peripheral vessels at random lung points (*points_mm*: candidate centres), 0.5-1.8 mm radius."""
    segments = []
    for i in rng.choice(len(points_mm), size=min(count, len(points_mm)), replace=False):
        direction = _unit(rng.normal(size=3))
        half = direction * rng.uniform(5.0, 20.0)
        segments.append(Segment(points_mm[i] - half, points_mm[i] + half, float(rng.uniform(0.5, 1.8))))
    return segments


def airway_tree(body: Body, rng: np.random.Generator) -> list[Segment]:
    """Trachea from above the apex to the carina, main bronchi, then three generations per side."""
    carina = np.array([0.0, -body.half_depth * 0.05, body.lung_apex_z - rng.uniform(55.0, 70.0)])
    top = np.array([0.0, -body.half_depth * 0.15, body.lung_apex_z + 60.0])
    segments = [Segment(top, carina, rng.uniform(7.5, 9.5))]
    for side in (-1, 1):
        direction = _unit(np.array([side * 1.0, 0.15, -0.7 - (0.2 if side < 0 else 0.0)]))
        stack = [(carina, direction, rng.uniform(5.0, 6.5), 0)]
        while stack:
            p0, d, radius, gen = stack.pop()
            p1 = p0 + d * (rng.uniform(4.0, 6.0) * radius + 10.0)
            segments.append(Segment(p0, p1, radius))
            if gen >= 3:
                continue
            for sign in (-1.0, 1.0):
                stack.append((p1, _turn(d, sign * rng.uniform(20.0, 40.0), rng), radius * 0.72, gen + 1))
    return segments


def rib_segments(body: Body, rng: np.random.Generator) -> list[Segment]:
    """Ribs as polylines along the inner chest wall, sloping down anteriorly, ~25 mm apart."""
    segments: list[Segment] = []
    ax = body.half_width - body.fat_mm - 9.0
    ay = body.half_depth - body.fat_mm * 0.8 - 9.0
    z = body.lung_apex_z - 5.0
    while z > body.lung_base_z - body.dome_mm:
        for side in (-1, 1):
            angles = np.linspace(np.pi / 2 - 0.35, -np.pi / 2 + 0.3, 9)
            pts = [np.array([side * ax * np.cos(a), ay * np.sin(a), z - 35.0 * (1 - np.sin(a)) / 2]) for a in angles]
            radius = rng.uniform(3.5, 5.0)
            segments.extend(Segment(p, q, radius) for p, q in zip(pts[:-1], pts[1:], strict=True))
        z -= rng.uniform(22.0, 28.0)
    return segments
