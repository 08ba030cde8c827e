"""Chest CT phantoms of the second family (family B), built independently of family A.

``generate_phantom_b(seed, config)`` returns a :class:`~training.lung_nodules.phantom.Phantom` (the truth
format family A writes: HU volume, nodule labels, solid labels, lung mask, nodule records), so every
dataset writer and evaluator reads it. What differs from family A (see :mod:`.phantom_b_anatomy` and
:mod:`.phantom_b_nodules`): a super-ellipse body, harmonic lungs with paraboloid domes, a rotated heart,
fissures, vessel trees tapering to the pleura, atelectasis bands, pleural plaques, lobulated / spiculated /
irregular / juxtavascular / juxtapleural (round, lentiform, triangular) / perifissural nodules, a soft or a
sharp reconstruction kernel with correlated noise whose texture follows the kernel, slice thickness
0.6-3 mm, kVp 100-140 (bone HU and noise follow it). :func:`write_dicom_b` writes the series with
unsigned 12-bit pixel data and rescale intercept -1024 (family A writes signed data).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from scipy import ndimage

from imaging.geometry import Grid
from training.ct_dicom import CtSeriesInfo, write_ct_series
from training.lung_nodules import phantom_b_anatomy as anat
from training.lung_nodules import phantom_b_nodules as nod
from training.lung_nodules.phantom import Phantom

LOGGER = logging.getLogger(__name__)
THICKNESSES = (0.6, 0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class PhantomConfigB:
    """Ranges family B samples from. ``kinds``: the nodule kinds of each phantom in order (empty: random
    kinds from :data:`~training.lung_nodules.phantom_b_nodules.KINDS`); ``z_extent_mm`` None: whole lungs."""

    pixel_mm: tuple[float, float] = (0.55, 0.95)
    nodules: tuple[int, int] = (1, 5)
    diameter_mm: tuple[float, float] = (4.0, 24.0)
    kinds: tuple[str, ...] = ()
    z_extent_mm: float | None = None
    max_matrix: int = 512

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(nod.KINDS)
        if unknown:
            raise ValueError(f"phantom family b kinds {sorted(unknown)}: not one of {nod.KINDS}")
        if not 0 < self.diameter_mm[0] <= self.diameter_mm[1]:
            raise ValueError(f"phantom diameter_mm {self.diameter_mm}: need 0 < low <= high")


def _grid(rng: np.random.Generator, c: anat.ChestB, config: PhantomConfigB) -> Grid:
    pixel = float(rng.uniform(*config.pixel_mm))
    thickness = float(rng.choice(THICKNESSES))
    fov = 2 * c.half_width + 30.0
    n = int(min(config.max_matrix, np.ceil(fov / pixel)))
    pixel = max(pixel, fov / n)
    lo, hi = c.base_z - max(c.dome_mm) - 10.0, c.apex_z + 10.0
    if config.z_extent_mm is not None:
        height = min(config.z_extent_mm, hi - lo)
        lo = float(rng.uniform(c.base_z, max(c.base_z, c.apex_z - 30.0 - height)))
        hi = lo + height
    nz = max(8, int(np.ceil((hi - lo) / thickness)))
    return Grid.axial((nz, n, n), (thickness, pixel, pixel), (-(n - 1) * pixel / 2.0, -(n - 1) * pixel / 2.0, lo))


def _chest(c: anat.ChestB, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = grid.shape
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    x, y = (ox + sx * np.arange(nx))[None, :], (oy + sy * np.arange(ny))[:, None]
    hu, lung, side = np.empty(grid.shape, np.float32), np.empty(grid.shape, bool), np.empty(grid.shape, np.int8)
    for k in range(nz):
        hu[k], lung[k], side[k] = anat.chest_slice(c, x, y, oz + sz * k)
    return hu, lung, side


def _gradient(dist: np.ndarray, idx: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Unit LPS vector of the distance gradient at *idx* (points into the lung, away from the pleura)."""
    g = np.zeros(3)
    for axis in range(3):
        hi, lo = idx.copy(), idx.copy()
        hi[axis], lo[axis] = min(idx[axis] + 1, dist.shape[axis] - 1), max(idx[axis] - 1, 0)
        g[axis] = (dist[tuple(hi)] - dist[tuple(lo)]) / (spacing[axis] * max(hi[axis] - lo[axis], 1))
    lps = np.array([g[2], g[1], g[0]])
    return lps / max(float(np.linalg.norm(lps)), 1e-9)


class _Placer:
    def __init__(self, rng: np.random.Generator, grid: Grid, lung: np.ndarray, vessels: np.ndarray,
                 fissures: list[anat.Fissure]) -> None:
        self.rng, self.grid, self.lung, self.vessels, self.fissures = rng, grid, lung, vessels, fissures
        coarse = ndimage.distance_transform_edt(lung[:, ::2, ::2], sampling=(grid.spacing[0], 2 * grid.spacing[1],
                                                                          2 * grid.spacing[2]))
        self.points = np.argwhere(lung[:, ::2, ::2])
        self.point_dist = coarse[tuple(self.points.T)].astype(np.float32)
        self.points *= np.array([1, 2, 2])
        vessel_points = np.argwhere(vessels[:, ::2, ::2])
        self.vessel_dist = coarse[tuple(vessel_points.T)].astype(np.float32)
        self.vessel_points = vessel_points * np.array([1, 2, 2])
        self.taken: list[nod.NoduleB] = []

    def _pick(self, points: np.ndarray, where: np.ndarray) -> np.ndarray | None:
        chosen = points[where]
        return None if len(chosen) == 0 else chosen[self.rng.integers(len(chosen))]

    def _local(self, idx: np.ndarray, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Exact distance to the pleura (mm) in a box around *idx*, and the box's first index."""
        half = np.ceil(radius_mm / np.array(self.grid.spacing)).astype(int)
        start = np.maximum(idx - half, 0)
        stop = np.minimum(idx + half + 1, self.lung.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
        return ndimage.distance_transform_edt(self.lung[box], sampling=self.grid.spacing), start

    def _ok(self, n: nod.NoduleB, max_vessel: float = 0.05, min_vessel: float = 0.0, in_lung: float = 1.0) -> bool:
        occ, box = nod.occupancy(n, self.grid, samples=1)
        if occ is None or occ.shape != tuple(s.stop - s.start for s in box):
            return False
        body = occ > 0.5
        if not body.any() or self.lung[box][body].mean() < in_lung:
            return False
        lo, hi = self.grid.to_index(n.centre - n.reach_mm), self.grid.to_index(n.centre + n.reach_mm)
        if np.any(np.minimum(lo, hi) < 1) or np.any(np.maximum(lo, hi) > np.array(self.grid.shape) - 2):
            return False
        share = float(self.vessels[box][body].mean())
        if not min_vessel <= share <= max_vessel:
            return False
        return all(np.linalg.norm(n.centre - t.centre) > n.reach_mm + t.reach_mm + 3 for t in self.taken)

    def _near_fissure(self, n: nod.NoduleB) -> bool:
        return any(abs(float(f.distance(n.centre))) < n.reach_mm + 2 for f in self.fissures)

    def place(self, n: nod.NoduleB, tries: int = 80) -> nod.NoduleB | None:
        g, rng = self.grid, self.rng
        size = max(n.axes)
        for _ in range(tries):
            if n.kind in ("juxtapleural-round", "juxtapleural-lentiform", "juxtapleural-triangular"):
                target = {"juxtapleural-round": n.axes[0], "juxtapleural-lentiform": n.axes[2]}.get(n.kind, 0.5) + 0.4
                near = self._pick(self.points, np.abs(self.point_dist - target) < 2.5)
                if near is None:
                    return None
                dist, start = self._local(near, size + 10.0)
                ring = np.argwhere(np.abs(dist - target) < 0.35)
                if len(ring) == 0:
                    continue
                local = ring[np.argmin(np.linalg.norm(ring - (near - start), axis=1))]
                normal = _gradient(dist, local, g.spacing)
                idx = start + local
                if not np.isfinite(normal).all() or abs(normal[2]) > 0.45:
                    continue  # dome or apex: not an axial juxtapleural nodule
                frame = nod.frame_from(normal, rng)
                placed = nod.moved(n, g.to_mm(idx), frame)
                if n.kind == "juxtapleural-triangular":  # the base plane lies 0.9 mm inside the pleura
                    placed = nod.moved(n, g.to_mm(idx), frame)
                ok = self._ok(placed, in_lung=0.95) and not self._near_fissure(placed)
            elif n.kind == "perifissural":
                f = self.fissures[int(rng.integers(len(self.fissures)))]
                idx = self._pick(self.points, self.point_dist >= size + 4)
                if idx is None:
                    return None
                p = g.to_mm(idx)
                p = p - f.normal * float(f.distance(p))
                on = np.round(g.to_index(p)).astype(int)
                if np.any(on < 0) or np.any(on >= self.lung.shape) or not self.lung[tuple(on)]:
                    continue
                if (p[0] < 0) != (f.side < 0) or (f.anterior_of is not None
                                                   and self.fissures[f.anterior_of].distance(p) <= 0):
                    continue
                placed = nod.moved(n, p, nod.frame_from(f.normal, rng), abs(float(f.distance(p))))
                ok = self._ok(placed, max_vessel=0.1)
            elif n.kind == "juxtavascular":
                idx = self._pick(self.vessel_points, self.vessel_dist >= size + 6)
                if idx is None:
                    return None
                v = g.to_mm(idx)
                d = rng.normal(size=3)
                placed = nod.moved(n, v + d / np.linalg.norm(d) * size * 0.9, nod.frame_from(rng.normal(size=3), rng))
                ok = self._ok(placed, max_vessel=0.25, min_vessel=0.003) and not self._near_fissure(placed)
            else:
                idx = self._pick(self.points, self.point_dist >= size * 1.3 + 3)
                if idx is None:
                    return None
                placed = nod.moved(n, g.to_mm(idx), nod.frame_from(rng.normal(size=3), rng))
                ok = self._ok(placed) and not self._near_fissure(placed)
            if ok:
                self.taken.append(placed)
                return placed
        return None


def _kernel_and_noise(hu: np.ndarray, grid: Grid, rng: np.random.Generator, kernel: str, sigma_hu: float) -> None:
    sz, sy, _ = grid.spacing
    ndimage.gaussian_filter(hu, sigma=(0.4, 0.45 / sy, 0.45 / sy), output=hu)
    if kernel == "sharp":  # edge enhancement: overshoot at every edge
        hu += float(rng.uniform(0.5, 0.9)) * (hu - ndimage.gaussian_filter(hu, sigma=(0, 1.2 / sy, 1.2 / sy)))
    else:
        ndimage.gaussian_filter(hu, sigma=(0, 0.5 / sy, 0.5 / sy), output=hu)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    if kernel == "sharp":  # fine-grained, high-pass texture
        noise -= ndimage.gaussian_filter(noise, sigma=(0, 1.5, 1.5))
    else:  # blotchy, low-pass texture
        ndimage.gaussian_filter(noise, sigma=(0.5, 1.4, 1.4), output=noise)
    hu += noise * (sigma_hu / max(float(noise.std()), 1e-6))


def generate_phantom_b(seed: int, config: PhantomConfigB = PhantomConfigB()) -> Phantom:
    """The family-B phantom of *seed* (deterministic for (seed, config))."""
    rng = np.random.default_rng([seed, 0xB])
    chest = anat.ChestB.random(rng)
    grid = _grid(rng, chest, config)
    hu, lung, side = _chest(chest, grid)
    vessels = anat.vessel_trees(lung, grid, chest, rng)
    hu[vessels] = anat.BLOOD
    fissures = chest.fissures(rng)
    anat.render_fissures(hu, side, grid, fissures, float(rng.uniform(0.5, 1.0)))
    confounders = anat.atelectasis_and_plaques(hu, lung, grid, chest, rng)
    placer = _Placer(rng, grid, lung, vessels, fissures)
    count = len(config.kinds) or int(rng.integers(config.nodules[0], config.nodules[1] + 1))
    kinds = config.kinds or tuple(str(k) for k in rng.choice(nod.KINDS, size=count))
    labels, solid = np.zeros(grid.shape, np.uint8), np.zeros(grid.shape, np.uint8)
    nodules: list[nod.NoduleB] = []
    volumes: list[float] = []
    for kind in kinds:
        shape = placer.place(nod.sample(rng, kind, config.diameter_mm))
        if shape is None:
            LOGGER.debug("phantom b %d: no place for a %s nodule", seed, kind)
            continue
        occ, box = nod.occupancy(shape, grid)
        if occ is None:
            continue
        label = len(nodules) + 1
        value = np.float32(shape.hu)
        if shape.kind == "part-solid":
            core, _ = nod.occupancy(shape, grid, scale=shape.core)
            hu[box] = hu[box] * (1 - occ) + occ * value + (core if core is not None else 0) * (shape.core_hu - value)
            if core is not None:
                solid[box][core >= 0.5] = label
        else:
            hu[box] = hu[box] * (1 - occ) + occ * value
            if shape.kind != "ground-glass":
                solid[box][occ >= 0.5] = label
        labels[box][occ >= 0.5] = label
        nodules.append(shape)
        volumes.append(float(occ.sum()) * grid.voxel_volume_mm3)
    kernel = str(rng.choice(["soft", "sharp"]))
    noise_hu = float(rng.uniform(6.0, 22.0)) * (120.0 / chest.kvp) ** 1.5 * (chest.half_width / 170.0) \
        * (1.0 / grid.spacing[0]) ** 0.5
    _kernel_and_noise(hu, grid, rng, kernel, noise_hu)
    lung_z = (chest.base_z - 0.6 * max(chest.dome_mm), chest.apex_z)
    records = [nod.truth(n, k, v, lung_z) for k, (n, v) in enumerate(zip(nodules, volumes, strict=True), start=1)]
    info: dict[str, Any] = {
        "family": "b", "slice_thickness_mm": round(grid.spacing[0], 3), "pixel_mm": round(grid.spacing[1], 4),
        "noise_hu": round(noise_hu, 1), "kernel": kernel, "kvp": chest.kvp,
        "body_width_mm": round(2 * chest.half_width, 1), "shape": list(grid.shape),
        "rescale": "unsigned, intercept -1024",
        "fissures": [{"side": "right" if f.side < 0 else "left", "point_mm": [round(float(v), 2) for v in f.point],
                      "normal": [round(float(v), 5) for v in f.normal], "horizontal": f.anterior_of is not None}
                     for f in fissures],
        "confounders": confounders,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }
    lung_out = ndimage.binary_fill_holes(lung) | (labels > 0)
    LOGGER.debug("phantom b %d: %s, %d nodules", seed, grid.shape, len(records))
    return Phantom(seed, np.clip(np.round(hu), -1024, 3071).astype(np.int16), grid, labels, solid, lung_out,
                   records, info)


def write_dicom_b(phantom: Phantom, out_dir: Path, info: CtSeriesInfo) -> list[Path]:
    """The phantom as a CT series with family B's conventions: unsigned 12-bit pixels (HU + 1024) with
    rescale intercept -1024, its kVp and reconstruction kernel."""
    paths = write_ct_series(phantom.hu, phantom.affine, out_dir, info)
    kernel = {"soft": "B30f", "sharp": "B70f"}[str(phantom.info.get("kernel", "soft"))]
    for path in paths:
        ds = pydicom.dcmread(path)
        stored = np.clip(ds.pixel_array.astype(np.int32), 0, 4095).astype(np.uint16)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = stored.tobytes()
        ds.KVP = int(phantom.info.get("kvp", 120))
        ds.ConvolutionKernel = kernel
        ds.save_as(path, enforce_file_format=True)
    return paths
