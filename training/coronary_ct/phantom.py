"""Gated non-contrast calcium-score CT phantoms with ground truth per voxel, lesion and vessel.

``make_phantom(seed)`` is reproducible: the same seed gives the same volume. The truth of a
lesion (a 2D candidate region found by :func:`models.coronary_ct.calcium.find_lesions`) is the
majority truth label of its pixels; the truth score is the Agatston definition applied to the
phantom image with those labels (what a reader with perfect vessel assignment would get).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from models.coronary_ct.calcium import CalciumScore, Lesion, ScanGeometry, Vessel, find_lesions, score
from training.coronary_ct.anatomy import BLOOD, Anatomy, render_slice
from training.coronary_ct.geometry import AORTIC_ROOT_RADIUS_MM, AV_GROOVE_W, Heart, coronary_paths

LOGGER = logging.getLogger(__name__)


class Truth(IntEnum):
    """Voxel truth labels. 1-4 equal the network class index of the vessel."""

    NONE = 0
    LM = 1
    LAD = 2
    LCX = 3
    RCA = 4
    EXTRA_CORONARY = 5  # aortic wall, aortic valve, mitral annulus calcium
    BONE = 6

    @property
    def vessel(self) -> Vessel:
        return {1: Vessel.LM, 2: Vessel.LAD, 3: Vessel.LCX, 4: Vessel.RCA}.get(int(self), Vessel.NONE)


_VESSEL_TRUTH = {Vessel.LM: Truth.LM, Vessel.LAD: Truth.LAD, Vessel.LCX: Truth.LCX, Vessel.RCA: Truth.RCA}
_VESSEL_P = {Vessel.LM: 0.12, Vessel.LAD: 0.38, Vessel.LCX: 0.2, Vessel.RCA: 0.3}
_MIN_GAP_MM = 7.0
_CORONARY_KINDS = {v.value for v in _VESSEL_TRUTH}


@dataclass(frozen=True)
class Calcification:
    """One calcified blob: what it is, centre (mm), semi-axes (mm), rotation (quaternion), HU."""

    kind: str  # LM, LAD, LCx, RCA, aortic, valve, mitral
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    hu: float


@dataclass(frozen=True)
class CalciumPhantom:
    """A phantom: HU (slices, rows, columns), truth labels, geometry, and its calcifications.

    Slice k lies at z = origin_mm[2] + k x increment (inferior to superior); pixel (i, j) at
    x = origin_mm[0] + j x spacing, y = origin_mm[1] + i x spacing (LPS, axial).
    """

    seed: int
    hu: np.ndarray
    labels: np.ndarray
    pixel_spacing_mm: float
    increment_mm: float
    origin_mm: tuple[float, float, float]
    calcifications: tuple[Calcification, ...]
    noise_hu: float

    @property
    def geometry(self) -> ScanGeometry:
        return ScanGeometry((self.pixel_spacing_mm, self.pixel_spacing_mm), self.increment_mm)

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "pixel_spacing_mm": self.pixel_spacing_mm,
                           "increment_mm": self.increment_mm, "origin_mm": self.origin_mm,
                           "noise_hu": self.noise_hu, "calcifications": [asdict(c) for c in self.calcifications]})


def _stamp(hu: np.ndarray, labels: np.ndarray, calc: Calcification, label: int, grid: dict[str, Any]) -> None:
    """Add one ellipsoid with partial volume (5 sub-slices x 3 x 3 sub-pixels)."""
    ps, inc, origin = grid["ps"], grid["inc"], np.asarray(grid["origin"])
    centre = np.asarray(calc.centre_mm)
    reach = max(calc.radii_mm) + 1.0
    lo = np.floor((centre - reach - origin) / np.array([ps, ps, inc])).astype(int)
    hi = np.ceil((centre + reach - origin) / np.array([ps, ps, inc])).astype(int) + 1
    k0, k1 = max(lo[2], 0), min(hi[2], hu.shape[0])
    i0, i1 = max(lo[1], 0), min(hi[1], hu.shape[1])
    j0, j1 = max(lo[0], 0), min(hi[0], hu.shape[2])
    if k0 >= k1 or i0 >= i1 or j0 >= j1:
        return
    sub_z = (np.arange(5) - 2) / 5 * inc
    sub_xy = (np.arange(3) - 1) / 3 * ps
    kk, ii, jj, sz, sy, sx = np.meshgrid(np.arange(k0, k1), np.arange(i0, i1), np.arange(j0, j1),
                                         sub_z, sub_xy, sub_xy, indexing="ij")
    pts = np.stack([origin[0] + jj * ps + sx, origin[1] + ii * ps + sy, origin[2] + kk * inc + sz], axis=-1)
    local = Rotation.from_quat(calc.quaternion).inv().apply((pts - centre).reshape(-1, 3))
    inside = ((local / np.asarray(calc.radii_mm)) ** 2).sum(axis=1) <= 1.0
    frac = inside.reshape(kk.shape).mean(axis=(3, 4, 5))
    box = (slice(k0, k1), slice(i0, i1), slice(j0, j1))
    hu[box] = hu[box] * (1.0 - frac) + calc.hu * frac
    labels[box][frac > 0.02] = label


def _lumen(hu: np.ndarray, path: np.ndarray, radius_mm: float, grid: dict[str, Any]) -> None:
    """Blood-density vessel lumen (non-contrast: 40 HU in epicardial fat) along a centre line."""
    ps, inc, origin = grid["ps"], grid["inc"], np.asarray(grid["origin"])
    scale = np.array([ps, ps, inc])
    n_xy = int(math.ceil(radius_mm / ps)) + 1
    offsets = np.stack(np.meshgrid(np.arange(-n_xy, n_xy + 1), np.arange(-n_xy, n_xy + 1), np.arange(-1, 2),
                                   indexing="ij"), axis=-1).reshape(-1, 3)
    base = np.round((path[::2] - origin) / scale).astype(int)
    idx = (base[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    idx = np.unique(idx, axis=0)
    ok = (idx >= 0).all(axis=1) & (idx < np.array([hu.shape[2], hu.shape[1], hu.shape[0]])).all(axis=1)
    idx = idx[ok]
    pos = origin + idx * scale
    dist = _distance_to_path(pos, path)
    idx = idx[dist <= radius_mm]
    hu[idx[:, 2], idx[:, 1], idx[:, 0]] = BLOOD


def _distance_to_path(pos: np.ndarray, path: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(path).query(pos)[0]


def _random_blob(rng: np.random.Generator, kind: str, centre: np.ndarray, size: tuple[float, float],
                 hu: tuple[float, float]) -> Calcification:
    radii = tuple(float(r) for r in rng.uniform(size[0], size[1], 3))
    quat = tuple(float(q) for q in Rotation.random(random_state=int(rng.integers(2**31))).as_quat())
    value = float(math.exp(rng.uniform(math.log(hu[0]), math.log(hu[1]))))
    return Calcification(kind, tuple(float(c) for c in centre), radii, quat, value)  # type: ignore[arg-type]


def _far(centre: np.ndarray, others: list[Calcification], kind: str) -> bool:
    return all(np.linalg.norm(centre - np.asarray(o.centre_mm)) >= _MIN_GAP_MM
               for o in others if o.kind != kind)


def _coronary(rng: np.random.Generator, paths: dict[Vessel, np.ndarray]) -> list[Calcification]:
    count = 0 if rng.random() < 0.1 else int(rng.integers(1, 12))
    vessels = list(_VESSEL_P)
    out: list[Calcification] = []
    for _ in range(count * 5):
        if len(out) >= count:
            break
        v = vessels[int(rng.choice(len(vessels), p=list(_VESSEL_P.values())))]
        path = paths[v]
        lo, hi = (0.3, 0.8) if v is Vessel.LM else (0.08, 0.95)
        centre = path[int(rng.uniform(lo, hi) * (len(path) - 1))] + rng.normal(0, 0.6, 3)
        if _far(centre, out, v.value):
            out.append(_random_blob(rng, v.value, centre, (0.7, 2.6), (170.0, 1100.0)))
    return out


def _confounders(rng: np.random.Generator, heart: Heart, anat: Anatomy, z_top: float,
                 coronary: list[Calcification]) -> list[Calcification]:
    root = heart.aortic_root
    _, e_a, e_l = heart.frame
    out: list[Calcification] = []
    for _ in range(int(rng.integers(0, 6))):  # aortic wall: ascending and descending
        t = rng.uniform(0, 2 * math.pi)
        if rng.random() < 0.5:
            r = anat.asc_aorta_r
            c = np.array([root[0] + r * math.cos(t), root[1] + r * math.sin(t), rng.uniform(root[2] + 3, z_top)])
        else:
            dx, dy, r = anat.desc_aorta
            c = np.array([dx + r * math.cos(t), dy + r * math.sin(t), rng.uniform(root[2] - 60, z_top)])
        out.append(_random_blob(rng, "aortic", c, (0.8, 2.5), (200.0, 1000.0)))
    for _ in range(int(rng.integers(0, 4))):  # aortic valve, inside the root
        t = rng.uniform(0, 2 * math.pi)
        c = root + rng.uniform(5, 10) * (math.cos(t) * e_a + math.sin(t) * e_l) + rng.normal(0, 2, 3)
        out.append(_random_blob(rng, "valve", c, (1.0, 3.0), (200.0, 1000.0)))
    for _ in range(int(rng.integers(0, 4))):  # mitral annulus, inside the left AV groove
        c = heart.surface(AV_GROOVE_W + 0.08, rng.uniform(90, 200), -9.0)
        out.append(_random_blob(rng, "mitral", c, (1.0, 3.0), (200.0, 900.0)))
    return [c for c in out if _far(np.asarray(c.centre_mm), coronary, c.kind)]


def make_phantom(seed: int, rows: int = 256) -> CalciumPhantom:
    """A reproducible gated calcium-score CT phantom (2.5 or 3 mm contiguous slices, 120 kVp-like HU)."""
    rng = np.random.default_rng(seed)
    heart = Heart.random(rng)
    paths = coronary_paths(heart, rng)
    anat = Anatomy.random(rng, heart)
    ps = float(rng.uniform(0.68, 0.9))
    inc = float(rng.choice([2.5, 3.0]))
    z_lo = heart.z_range[0] - rng.uniform(4, 12)
    z_top = float(heart.aortic_root[2] + AORTIC_ROOT_RADIUS_MM + rng.uniform(12, 25))
    n = int(math.ceil((z_top - z_lo) / inc)) + 1
    x0 = heart.centre[0] - 12.0 + rng.uniform(-8, 8) - ps * rows / 2
    y0 = heart.centre[1] + 28.0 + rng.uniform(-8, 8) - ps * rows / 2
    origin = (float(x0), float(y0), float(z_lo))
    x, y = np.meshgrid(x0 + np.arange(rows) * ps, y0 + np.arange(rows) * ps)
    hu = np.empty((n, rows, rows), dtype=np.float32)
    labels = np.empty((n, rows, rows), dtype=np.uint8)
    for k in range(n):
        hu[k], labels[k] = render_slice(anat, heart, x, y, z_lo + k * inc)
    grid = {"ps": ps, "inc": inc, "origin": origin}
    for v, path in paths.items():
        _lumen(hu, path, 2.2 if v in (Vessel.LM, Vessel.RCA) else 1.8, grid)
    coronary = _coronary(rng, paths)
    calcs = coronary + _confounders(rng, heart, anat, z_top, coronary)
    for c in calcs:
        label = _VESSEL_TRUTH[Vessel(c.kind)] if c.kind in _CORONARY_KINDS else Truth.EXTRA_CORONARY
        _stamp(hu, labels, c, int(label), grid)
    hu = ndimage.gaussian_filter(hu, sigma=(0.0, 0.45, 0.45))
    noise = float(rng.uniform(8.0, 22.0))
    hu += rng.normal(0.0, noise, hu.shape).astype(np.float32)
    hu = np.clip(np.round(hu), -1024, 3071).astype(np.float32)
    return CalciumPhantom(seed, hu, labels, ps, inc, origin, tuple(calcs), noise)


def lesion_truth(phantom: CalciumPhantom, lesions: list[Lesion]) -> list[Truth]:
    """Majority truth label of each lesion's pixels (background pixels count as NONE)."""
    out = []
    for les in lesions:
        values = phantom.labels[les.slice_index, les.pixels[:, 0], les.pixels[:, 1]]
        out.append(Truth(int(np.bincount(values, minlength=7).argmax())))
    return out


def truth_score(phantom: CalciumPhantom) -> tuple[list[Lesion], list[Truth], CalciumScore]:
    """Lesions of the phantom, their truth labels, and the truth score (perfect vessel labels)."""
    lesions = find_lesions(phantom.hu, phantom.geometry)
    truth = lesion_truth(phantom, lesions)
    return lesions, truth, score(lesions, [t.vessel for t in truth], phantom.geometry)
