"""Chest anatomy of the second lung phantom family (family B), written independently of family A.

Patient mm, LPS (+x left, +y posterior, +z head). The body is a super-ellipse (boxier than family A's),
the lungs are harmonic-perturbed shapes whose bases are paraboloid domes and whose apices are cones,
the heart is a rotated ellipsoid pushed to the left, and the mediastinum is a band. Each lung has an
oblique fissure (the right one also a horizontal fissure): planes rendered as thin lines of soft
tissue inside the lung. Vessel trees start at the hilum and taper linearly to zero at the pleura they
run toward. Atelectasis bands (thin linear soft-tissue plates near the bases) and pleural plaques
(flat thickenings, some calcified, on the costal pleura) are confounders a detector must not mark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.geometry import Grid

AIR, LUNG, FAT, MUSCLE, BLOOD, FISSURE = -1000.0, -850.0, -95.0, 50.0, 45.0, -520.0


@dataclass(frozen=True)
class Fissure:
    """A plane ``normal . (p - point) = 0`` limited to one lung (side -1 right, +1 left) and, for the
    horizontal fissure, to the anterior side of the oblique one (``anterior_of``)."""

    side: int
    point: np.ndarray
    normal: np.ndarray
    anterior_of: int | None = None

    def distance(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of points ``p[..., 3]`` to the plane."""
        return (p - self.point) @ self.normal


@dataclass(frozen=True)
class ChestB:
    """Body and lung geometry (mm)."""

    half_width: float
    half_depth: float
    power: float
    fat_mm: float
    base_z: float
    apex_z: float
    dome_mm: tuple[float, float]  # right, left dome height
    lung_centre: tuple[tuple[float, float], tuple[float, float]]  # right, left (x, y)
    lung_radii: tuple[tuple[float, float], tuple[float, float]]  # right, left (rx, ry) at full width
    harmonics: tuple[tuple[float, float, float], ...]  # (order, amplitude, phase) of the lung outline
    heart: tuple[float, float, float, float, float, float]  # cx, cy, cz, rx, ry, rz
    heart_angle: float
    kvp: int

    @classmethod
    def random(cls, rng: np.random.Generator) -> ChestB:
        hw = float(rng.uniform(135.0, 205.0))
        hd = hw * float(rng.uniform(0.55, 0.8))
        height = float(rng.uniform(170.0, 270.0))
        shift = float(rng.uniform(-0.04, 0.06)) * hw
        right = (-hw * rng.uniform(0.40, 0.50) + shift, hd * rng.uniform(-0.02, 0.12))
        left = (hw * rng.uniform(0.40, 0.50) + shift, hd * rng.uniform(-0.02, 0.12))
        rr = (hw * rng.uniform(0.30, 0.38), hd * rng.uniform(0.6, 0.72))
        lr = (hw * rng.uniform(0.27, 0.35), hd * rng.uniform(0.58, 0.7))
        heart = (hw * rng.uniform(0.08, 0.22), -hd * rng.uniform(0.15, 0.3), -height / 2 + height * rng.uniform(0.15, 0.3),
                 hw * rng.uniform(0.3, 0.42), hd * rng.uniform(0.35, 0.5), height * rng.uniform(0.22, 0.3))
        harmonics = tuple((float(k), float(rng.uniform(0.0, 0.05)), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 5))
        return cls(hw, hd, float(rng.uniform(2.6, 3.4)), float(rng.uniform(4.0, 30.0)), -height / 2, height / 2,
                   (float(rng.uniform(30.0, 55.0)), float(rng.uniform(20.0, 45.0))), (right, left), (rr, lr),
                   harmonics, heart, float(rng.uniform(-0.6, -0.2)), int(rng.choice([100, 110, 120, 130, 140])))

    def fissures(self, rng: np.random.Generator) -> list[Fissure]:
        out = []
        for i, side in enumerate((-1, 1)):
            cx, cy = self.lung_centre[i]
            zmid = self.base_z + (self.apex_z - self.base_z) * rng.uniform(0.4, 0.55)
            tilt = rng.uniform(0.8, 1.1)  # oblique: runs from posterior-superior to anterior-inferior
            normal = np.array([rng.uniform(-0.1, 0.1), -math.sin(tilt), math.cos(tilt)])
            normal = normal / np.linalg.norm(normal)
            out.append(Fissure(side, np.array([cx, cy, zmid]), normal))
        cx, cy = self.lung_centre[0]
        zh = self.base_z + (self.apex_z - self.base_z) * rng.uniform(0.55, 0.68)
        horizontal = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.1, 0.1), 1.0])
        out.append(Fissure(-1, np.array([cx, cy, zh]), horizontal / np.linalg.norm(horizontal), anterior_of=0))
        return out

    def lung_scale(self, z: float, side_index: int) -> float:
        """Fraction of the full in-plane radius at height *z* (cone to the apex, dome cut at the base)."""
        top = np.clip((self.apex_z - z) / (0.4 * (self.apex_z - self.base_z)), 0.0, 1.0)
        return float(top ** 0.6) if z >= self.base_z - self.dome_mm[side_index] else 0.0


def _superellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, p: float) -> np.ndarray:
    return np.abs((x - cx) / rx) ** p + np.abs((y - cy) / ry) ** p <= 1.0


def chest_slice(c: ChestB, x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU, lung mask, lung side -1/0/+1) of one axial plane before vessels, nodules, kernel and noise."""
    img = np.full(np.broadcast_shapes(x.shape, y.shape), AIR, dtype=np.float32)
    img[_superellipse(x, y, 0.0, 0.0, c.half_width, c.half_depth, c.power)] = FAT
    img[_superellipse(x, y, 0.0, 0.0, c.half_width - c.fat_mm, c.half_depth - 0.7 * c.fat_mm, c.power)] = MUSCLE
    side = np.zeros(img.shape, dtype=np.int8)
    for i, s in enumerate((-1, 1)):
        f = c.lung_scale(z, i)
        if f <= 0:
            continue
        cx, cy = c.lung_centre[i]
        rx, ry = c.lung_radii[i]
        r = np.sqrt(((x - cx) / (rx * f)) ** 2 + ((y - cy) / (ry * f)) ** 2)
        inside = r <= 1.0 + sum(a for _, a, _ in c.harmonics)
        near = np.nonzero(inside)
        theta = np.arctan2(np.broadcast_to(y, r.shape)[near] - cy, np.broadcast_to(x, r.shape)[near] - cx)
        inside[near] = r[near] <= 1.0 + sum(a * np.cos(k * theta + ph) for k, a, ph in c.harmonics)
        rim = np.clip(1.0 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 0.0, 1.0)
        inside &= z >= c.base_z - c.dome_mm[i] + c.dome_mm[i] * rim  # dome high centrally, recesses low
        inside &= s * x > c.half_width * 0.08  # mediastinum
        side[inside] = s
    hx, hy, hz, hrx, hry, hrz = c.heart
    fz = 1.0 - ((z - hz) / hrz) ** 2
    if fz > 0:
        ca, sa = math.cos(c.heart_angle), math.sin(c.heart_angle)
        u, v = (x - hx) * ca + (y - hy) * sa, -(x - hx) * sa + (y - hy) * ca
        heart = (u / (hrx * math.sqrt(fz))) ** 2 + (v / (hry * math.sqrt(fz))) ** 2 <= 1.0
        side[heart] = 0
        img[heart] = BLOOD
    spine_y = c.half_depth * 0.6
    img[_superellipse(x, y, 0.0, spine_y, c.half_width * 0.1, c.half_depth * 0.17, 2.0)] = bone_hu(c.kvp)
    lung = side != 0
    img[lung] = LUNG
    return img, lung, side


def bone_hu(kvp: int) -> float:
    """Cortical-ish bone HU falls as the tube voltage rises (iodine and calcium contrast)."""
    return 700.0 - 2.5 * (kvp - 100)


def render_fissures(hu: np.ndarray, side: np.ndarray, grid: Grid, fissures: list[Fissure],
                    width_mm: float) -> None:
    """Thin soft-tissue planes inside their lung (partial volume over *width_mm*)."""
    nz, ny, nx = hu.shape
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    x = ox + sx * np.arange(nx)
    y = oy + sy * np.arange(ny)
    for k in range(nz):
        rows, cols = np.nonzero(side[k])
        if len(rows) == 0:
            continue
        p = np.stack([x[cols], y[rows], np.full(len(rows), oz + sz * k)], axis=-1)
        here = side[k][rows, cols]
        add = np.zeros(len(rows), dtype=np.float32)
        for f in fissures:
            w = np.clip(1.0 - np.abs(f.distance(p)) / width_mm, 0.0, 1.0)
            if f.anterior_of is not None:
                w *= fissures[f.anterior_of].distance(p) > 0
            add += np.where(here == f.side, w, 0.0).astype(np.float32)
        hu[k][rows, cols] += (FISSURE - LUNG) * np.minimum(add, 1.0)


def _capsule(volume: np.ndarray, grid: Grid, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, value: float,
             within: np.ndarray | None = None) -> None:
    """Write *value* into the voxels within a tapered tube (radius r0 at p0, r1 at p1)."""
    r = max(r0, r1)
    lo, hi = np.minimum(p0, p1) - r - 1, np.maximum(p0, p1) + r + 1
    a, b = grid.to_index(lo), grid.to_index(hi)
    start = np.maximum(np.floor(np.minimum(a, b)).astype(int), 0)
    stop = np.minimum(np.ceil(np.maximum(a, b)).astype(int) + 1, volume.shape)
    if np.any(stop <= start):
        return
    sl = tuple(slice(int(s), int(e)) for s, e in zip(start, stop, strict=True))
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    z = (oz + sz * np.arange(start[0], stop[0]))[:, None, None]
    y = (oy + sy * np.arange(start[1], stop[1]))[None, :, None]
    x = (ox + sx * np.arange(start[2], stop[2]))[None, None, :]
    d = p1 - p0
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / max(float(d @ d), 1e-9), 0, 1)
    dist2 = (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2
    mask = dist2 <= (r0 + (r1 - r0) * t) ** 2
    if within is not None:
        mask &= within[sl]
    volume[sl][mask] = value


def _run_to_pleura(lung: np.ndarray, grid: Grid, p: np.ndarray, direction: np.ndarray) -> float:
    """Distance (mm) from *p* along *direction* until the lung mask ends (0 if *p* is outside)."""
    step = 2.0
    for n in range(1, 200):
        idx = np.round(grid.to_index(p + direction * step * n)).astype(int)
        if np.any(idx < 0) or np.any(idx >= lung.shape) or not lung[tuple(idx)]:
            return step * (n - 1)
    return step * 200


def vessel_trees(lung: np.ndarray, grid: Grid, c: ChestB, rng: np.random.Generator) -> np.ndarray:
    """Vessel mask: trees from each hilum whose radius falls linearly to ~0 at the pleura they run toward."""
    vessels = np.zeros(lung.shape, dtype=bool)
    for i, s in enumerate((-1, 1)):
        cx, cy = c.lung_centre[i]
        hilum = np.array([cx + s * -c.lung_radii[i][0] * 0.55, cy - 5.0, c.base_z + 0.55 * (c.apex_z - c.base_z)])
        stack = []
        for _ in range(int(rng.integers(7, 11))):
            d = np.array([s * rng.uniform(0.3, 1.0), rng.uniform(-1, 1), rng.uniform(-1.1, 0.9)])
            stack.append((hilum + rng.normal(0, 3, 3), d / np.linalg.norm(d), float(rng.uniform(3.0, 4.8)), 0))
        while stack:
            p0, d, r, gen = stack.pop()
            reach = _run_to_pleura(lung, grid, p0, d)
            if reach < 4.0 or r < 0.35:
                continue
            length = min(reach, rng.uniform(15.0, 35.0))
            r1 = max(r * (1.0 - length / reach), 0.3)
            p1 = p0 + d * length
            _capsule(vessels, grid, p0, p1, r, r1, True, within=lung)  # type: ignore[arg-type]
            if gen < 6 and r1 > 0.5:
                for _ in range(2):
                    nd = d + rng.normal(0, 0.45, 3)
                    stack.append((p1, nd / np.linalg.norm(nd), r1 * float(rng.uniform(0.75, 0.95)), gen + 1))
    return vessels


def atelectasis_and_plaques(hu: np.ndarray, lung: np.ndarray, grid: Grid, c: ChestB,
                            rng: np.random.Generator) -> list[dict[str, object]]:
    """Linear atelectasis bands in the lower lungs and pleural plaques on the chest wall; their records."""
    found: list[dict[str, object]] = []
    pts = np.argwhere(lung[:, ::4, ::4]) * np.array([1, 4, 4])
    if len(pts) == 0:
        return found
    lower = pts[grid.to_mm(pts)[:, 2] < c.base_z + 0.4 * (c.apex_z - c.base_z)]
    for _ in range(int(rng.integers(0, 3))):
        if len(lower) == 0:
            break
        p = grid.to_mm(lower[rng.integers(len(lower))])
        d = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-0.2, 0.2)])
        d /= np.linalg.norm(d)
        half = d * rng.uniform(12.0, 22.0)
        _capsule(hu, grid, p - half, p + half, 1.2, 1.2, float(rng.uniform(-150.0, 10.0)), within=lung)
        found.append({"kind": "atelectasis_band", "centre_mm": [round(float(v), 1) for v in p]})
    shell = lung & ~ndimage.binary_erosion(lung, iterations=1)
    edge = np.argwhere(shell[:, ::3, ::3]) * np.array([1, 3, 3])
    if len(edge) == 0:
        return found
    outside = ~lung
    for _ in range(int(rng.integers(0, 4))):
        p = grid.to_mm(edge[rng.integers(len(edge))])
        calcified = rng.random() < 0.4
        value = float(rng.uniform(250.0, 600.0)) if calcified else float(rng.uniform(40.0, 90.0))
        d = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 0.0])
        d /= np.linalg.norm(d) + 1e-9
        half = d * rng.uniform(6.0, 14.0)
        _capsule(hu, grid, p - half, p + half, 2.5, 2.5, value, within=outside)
        found.append({"kind": "pleural_plaque", "calcified": bool(calcified),
                      "centre_mm": [round(float(v), 1) for v in p]})
    return found
