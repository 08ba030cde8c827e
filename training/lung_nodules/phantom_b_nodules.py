"""Nodules of the second lung phantom family (family B): shapes, placement, rendering and truth.

Kinds: solid, lobulated, spiculated and irregular solid nodules, ground-glass and part-solid ones,
juxtavascular (touching a vessel), juxtapleural round (a sphere on the costal pleura), juxtapleural
lentiform (flattened along the pleura) and triangular (a cone whose base lies on the pleura), and
perifissural (lentiform, centred on a fissure plane, flat along it).

Truth (the same record keys as family A, so every evaluator reads it): the long and short axis are
measured on a 0.1 mm axial grid through the plane of the largest cross-section of the nodule body
(spicules excluded), the mean diameter is their Lung-RADS mean, the volume is the occupancy integral.
The category follows Lung-RADS v2022 from the KNOWN shape: a nodule on the costal or fissural pleura is
smooth and attached by construction, so it is category 2 below 10 mm when lentiform or triangular and
keeps its size category when round; lobulated, spiculated and irregular nodules keep their size category.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull

from imaging.geometry import Grid
from models.lung_nodules.lungrads import JuxtapleuralFeatures, NoduleForRads, NoduleType, PleuralShape, nodule_category
from models.lung_nodules.measures import mean_diameter_mm

KINDS = ("solid", "lobulated", "spiculated", "irregular", "ground-glass", "part-solid", "juxtavascular",
         "juxtapleural-round", "juxtapleural-lentiform", "juxtapleural-triangular", "perifissural")
PLEURAL = {"juxtapleural-round": PleuralShape.ROUND, "juxtapleural-lentiform": PleuralShape.LENTIFORM,
           "juxtapleural-triangular": PleuralShape.TRIANGULAR, "perifissural": PleuralShape.LENTIFORM}


@dataclass(frozen=True)
class NoduleB:
    """One nodule: *axes* are semi-axes along the columns of *frame* (LPS unit vectors); a cone
    (triangular) has its base radius ``axes[0]`` and height ``axes[2]`` along ``frame[:, 2]``."""

    kind: str
    centre: np.ndarray
    axes: tuple[float, float, float]
    frame: np.ndarray  # 3x3, columns = local axes in LPS
    hu: float
    lobes: tuple[tuple[float, float, float], ...] = ()  # (order, amplitude, phase) around the local z axis
    spicules: tuple[tuple[float, float, float, float], ...] = ()  # (azimuth, elevation, length mm, width mm)
    core: float = 0.0
    core_hu: float = 0.0
    fissure_mm: float | None = None  # distance of the centre to its fissure plane (perifissural)

    @property
    def nodule_type(self) -> NoduleType:
        return {"ground-glass": NoduleType.GROUND_GLASS, "part-solid": NoduleType.PART_SOLID}.get(
            self.kind, NoduleType.SOLID)

    @property
    def reach_mm(self) -> float:
        return max(self.axes) * 1.25 + max((s[2] for s in self.spicules), default=0.0) + 1.0


def body_inside(n: NoduleB, p: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Points ``p[..., 3]`` (LPS mm) inside the nodule body (spicules excluded), semi-axes x *scale*."""
    q = (p - n.centre) @ n.frame
    a, b, c = (s * scale for s in n.axes)
    if n.kind == "juxtapleural-triangular":
        h = q[..., 2]
        return (h >= 0) & (h <= c) & (np.hypot(q[..., 0] / a, q[..., 1] / b) <= 1.0 - h / c)
    rho = np.sqrt((q[..., 0] / a) ** 2 + (q[..., 1] / b) ** 2 + (q[..., 2] / c) ** 2)
    if n.lobes:
        theta = np.arctan2(q[..., 1], q[..., 0])
        flat = np.hypot(q[..., 0], q[..., 1]) / np.maximum(np.linalg.norm(q, axis=-1), 1e-6)
        bump = sum(amp * np.cos(k * theta + ph) for k, amp, ph in n.lobes) * flat
        return rho <= 1.0 + bump
    return rho <= 1.0


def _spicule_inside(n: NoduleB, p: np.ndarray) -> np.ndarray:
    out = np.zeros(p.shape[:-1], dtype=bool)
    for az, el, length, width in n.spicules:
        d = n.frame @ np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        base = 0.6 * min(n.axes)
        tip = max(n.axes) + length
        t = np.clip((p - n.centre) @ d, base, tip)
        dist = np.linalg.norm(p - n.centre - t[..., None] * d, axis=-1)
        out |= dist <= width / 2 * (1.0 - (t - base) / (tip - base)) + 0.05
    return out


def inside(n: NoduleB, p: np.ndarray) -> np.ndarray:
    return body_inside(n, p) | (_spicule_inside(n, p) if n.spicules else False)


def occupancy(n: NoduleB, grid: Grid, scale: float = 1.0, samples: int = 3
              ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
    """Fraction of each voxel inside the nodule over its bounding box (None outside the grid)."""
    r = n.reach_mm
    a, b = grid.to_index(n.centre - r), grid.to_index(n.centre + r)
    start = np.maximum(np.floor(np.minimum(a, b)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(np.maximum(a, b)).astype(int) + 2, grid.shape)
    if np.any(stop <= start):
        return None, ()
    box = tuple(slice(int(s), int(e)) for s, e in zip(start, stop, strict=True))
    sz, sy, sx = grid.spacing
    nzs = max(samples, int(math.ceil(sz / 0.35)))
    ox, oy, oz = grid.affine[:3, 3]
    occ = np.zeros(tuple(int(e - s) for s, e in zip(start, stop, strict=True)), dtype=np.float32)
    off = (np.arange(samples) + 0.5) / samples - 0.5
    offz = (np.arange(nzs) + 0.5) / nzs - 0.5
    zz = oz + sz * np.arange(start[0], stop[0])
    yy = oy + sy * np.arange(start[1], stop[1])
    xx = ox + sx * np.arange(start[2], stop[2])
    test = (lambda q: body_inside(n, q, scale)) if scale != 1.0 else (lambda q: inside(n, q))
    for dz in offz:
        for dy in off:
            for dx in off:
                p = np.stack(np.broadcast_arrays((xx + dx * sx)[None, None, :], (yy + dy * sy)[None, :, None],
                                                 (zz + dz * sz)[:, None, None]), axis=-1)
                occ += test(p)
    occ /= nzs * samples * samples
    return occ, box


def frame_from(normal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal frame whose third column is *normal*."""
    n = normal / np.linalg.norm(normal)
    u = np.cross(n, rng.normal(size=3))
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(n, u), n], axis=1)


def sample(rng: np.random.Generator, kind: str, diameter_mm: tuple[float, float]) -> NoduleB:
    """Size, shape and density of a nodule of *kind*; the centre and frame are set by placement."""
    mean = float(np.exp(rng.uniform(math.log(diameter_mm[0]), math.log(diameter_mm[1]))))
    eye = np.eye(3)
    solid_hu = float(rng.uniform(-15.0, 70.0))
    if kind in PLEURAL:
        mean = min(mean, 16.0)
        if kind == "juxtapleural-round":
            r = mean / 2
            return NoduleB(kind, np.zeros(3), (r, r * rng.uniform(0.92, 1.0), r * rng.uniform(0.92, 1.0)), eye, solid_hu)
        if kind == "juxtapleural-triangular":
            r = mean / 2
            return NoduleB(kind, np.zeros(3), (r, r * rng.uniform(0.85, 1.0), r * rng.uniform(0.9, 1.3)), eye, solid_hu)
        a = mean / 2
        return NoduleB(kind, np.zeros(3), (a, a * rng.uniform(0.85, 1.0), a * rng.uniform(0.3, 0.45)), eye, solid_hu)
    r = mean / 2
    axes = (r * rng.uniform(1.0, 1.15), r * rng.uniform(0.85, 1.0), r * rng.uniform(0.85, 1.1))
    if kind == "lobulated":
        lobes = tuple((float(k), float(rng.uniform(0.08, 0.16)), float(rng.uniform(0, 6.3))) for k in (3, 5))
        return NoduleB(kind, np.zeros(3), axes, eye, solid_hu, lobes=lobes)
    if kind == "irregular":
        lobes = tuple((float(k), float(rng.uniform(0.05, 0.12)), float(rng.uniform(0, 6.3))) for k in (2, 4, 7))
        return NoduleB(kind, np.zeros(3), axes, eye, solid_hu, lobes=lobes)
    if kind == "spiculated":
        spic = tuple((float(rng.uniform(0, 6.3)), float(rng.uniform(-0.5, 0.5)), float(rng.uniform(2.0, 6.0)),
                      float(rng.uniform(0.6, 1.0))) for _ in range(int(rng.integers(6, 12))))
        return NoduleB(kind, np.zeros(3), axes, eye, solid_hu, spicules=spic)
    if kind == "ground-glass":
        return NoduleB(kind, np.zeros(3), axes, eye, float(rng.uniform(-680.0, -480.0)))
    if kind == "part-solid":
        return NoduleB(kind, np.zeros(3), axes, eye, float(rng.uniform(-660.0, -500.0)),
                       core=float(rng.uniform(0.35, 0.7)), core_hu=float(rng.uniform(-10.0, 50.0)))
    return NoduleB(kind, np.zeros(3), axes, eye, solid_hu)


def measure_axes(n: NoduleB) -> tuple[float, float]:
    """(long, short) axis in mm on the axial plane of the largest cross-section of the body (0.1 mm grid)."""
    r = max(n.axes) * 1.3 + 0.5
    step = 0.1
    g = np.arange(-r, r + step / 2, step)
    best: np.ndarray | None = None
    for dz in np.linspace(-max(n.axes), max(n.axes), 41):
        p = np.stack(np.broadcast_arrays(n.centre[0] + g[None, :], n.centre[1] + g[:, None],
                                         np.full((1, 1), n.centre[2] + dz)), axis=-1)
        m = body_inside(n, p)
        if best is None or m.sum() > best.sum():
            best = m
    if best is None or best.sum() < 3:
        return 0.0, 0.0
    pts = np.argwhere(best)[:, ::-1] * step
    hull = pts[ConvexHull(pts).vertices]
    d = np.linalg.norm(hull[:, None] - hull[None], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    axis = (hull[j] - hull[i]) / max(d[i, j], 1e-9)
    across = hull @ np.array([-axis[1], axis[0]])
    return float(d[i, j]) + step, min(float(across.max() - across.min()) + step, float(d[i, j]) + step)


def truth(n: NoduleB, label: int, volume_mm3: float, lung_z: tuple[float, float]) -> dict[str, Any]:
    """The ground-truth record of one nodule, with family A's keys (and a few of family B's own)."""
    long_mm, short_mm = measure_axes(n)
    mean = mean_diameter_mm(round(long_mm, 2), round(min(short_mm, long_mm), 2))
    solid_mean = 0.0 if n.kind == "ground-glass" else mean
    if n.kind == "part-solid":
        solid_mean = mean_diameter_mm(round(long_mm * n.core, 2), round(min(short_mm, long_mm) * n.core, 2))
    pleural = PLEURAL.get(n.kind)
    features = JuxtapleuralFeatures(smooth=True, shape=pleural) if pleural else None
    rads = nodule_category(NoduleForRads(n.nodule_type, mean, solid_mean if n.kind == "part-solid" else 0.0,
                                         juxtapleural=pleural is not None, features=features))
    third = (lung_z[1] - lung_z[0]) / 3.0
    z = float(n.centre[2])
    zone = "lower" if z < lung_z[0] + third else ("middle" if z < lung_z[1] - third else "upper")
    record: dict[str, Any] = {
        "label": label, "kind": n.kind, "type": str(n.nodule_type), "juxtapleural": pleural is not None,
        "centre_mm": [round(float(v), 2) for v in n.centre], "long_axis_mm": round(long_mm, 2),
        "short_axis_mm": round(min(short_mm, long_mm), 2), "mean_diameter_mm": mean,
        "volume_mm3": round(volume_mm3, 1), "solid_diameter_mm": solid_mean, "hu": round(n.hu, 1),
        "side": "right" if n.centre[0] < 0 else "left", "zone": zone, "lung_rads": rads.value, "family": "b",
    }
    if pleural is not None:
        record["pleural_shape"] = pleural.value
        record["pleura"] = "fissural" if n.kind == "perifissural" else "costal"
    if n.fissure_mm is not None:
        record["fissure_distance_mm"] = round(n.fissure_mm, 2)
    return record


def moved(n: NoduleB, centre: np.ndarray, frame: np.ndarray | None = None, fissure_mm: float | None = None) -> NoduleB:
    return replace(n, centre=np.asarray(centre, dtype=np.float64), frame=n.frame if frame is None else frame,
                   fissure_mm=fissure_mm)
