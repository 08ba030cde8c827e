"""Blob candidates for small nodules: the Hessian dot-enhancement filter (Li, Sone and Doi 2003).

The network misses most nodules under 6 mm: on its 1 mm grid a 4 mm nodule looks like the vessel
cross-sections around it. A classic filter does not: where the image is a bright blob all three
eigenvalues of its Hessian are strongly negative, where it is a tube (a vessel) one of them is
near zero and where it is a plate (a fissure, the pleura) two are. With the eigenvalues sorted
``l1 <= l2 <= l3`` the dot measure is ``l3**2 / |l1|`` when ``l3 < 0`` (else 0), scale-normalised by
``sigma**2`` and maximised over a few scales (a sphere of radius r answers most at sigma = r / sqrt(3)).

``dot_filter`` evaluates it on the tissue voxels (HU > -600) of the lung mask grown by 2 voxels, on
the network grid, from Gaussian-smoothed HU and central differences; ``DotMap.peaks`` gives the
strongest responses at least ``separation_mm`` apart inside the lung. The lung-nodule pipeline adds them
as candidates next to the network's (``CandidateSettings.blob_candidates``) and gives every candidate
its strongest dot response as a second-stage feature (``rescore.py``). Pure numpy/scipy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid

SIGMAS_MM = (1.0, 1.5, 2.0)
TISSUE_HU = -600.0
SEPARATION_MM = 5.0


def _sym_eigenvalues(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray, f: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending eigenvalues of the symmetric matrices [[a, d, e], [d, b, f], [e, f, c]] (closed form)."""
    q = (a + b + c) / 3.0
    aa, bb, cc = a - q, b - q, c - q
    p = np.sqrt(np.maximum((aa * aa + bb * bb + cc * cc + 2.0 * (d * d + e * e + f * f)) / 6.0, 1e-20))
    det = (aa * (bb * cc - f * f) - d * (d * cc - f * e) + e * (d * f - bb * e)) / (p ** 3)
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    high = q + 2.0 * p * np.cos(phi)
    low = q + 2.0 * p * np.cos(phi + 2.0 * math.pi / 3.0)
    return low, 3.0 * q - high - low, high


@dataclass(frozen=True, eq=False)
class DotMap:
    """Dot response (and the scale that gave it) on the box *box* of the network grid; 0 off tissue."""

    box: tuple[slice, slice, slice]
    value: np.ndarray  # float32, shape of the box
    sigma_mm: np.ndarray  # float32, the scale of the strongest response

    def max_in(self, mask: np.ndarray, obj: tuple[slice, ...]) -> float:
        """Strongest response inside *mask* (a boolean array over the box *obj* of the network grid)."""
        lo = [max(o.start, b.start) for o, b in zip(obj, self.box, strict=True)]
        hi = [min(o.stop, b.stop) for o, b in zip(obj, self.box, strict=True)]
        if any(a >= b for a, b in zip(lo, hi, strict=True)):
            return 0.0
        inner = tuple(slice(a - o.start, b - o.start) for a, b, o in zip(lo, hi, obj, strict=True))
        here = tuple(slice(a - b.start, c - b.start) for a, c, b in zip(lo, hi, self.box, strict=True))
        part = mask[inner]
        return float(self.value[here][part].max()) if part.any() else 0.0

    def peaks(self, lung: np.ndarray, grid: Grid, count: int, separation_mm: float = SEPARATION_MM
              ) -> list[tuple[tuple[int, int, int], float, float]]:
        """The *count* strongest responses inside *lung*, each *separation_mm* from the others:
        ((z, y, x) on the network grid, response, sigma mm), strongest first."""
        if count <= 0:
            return []
        values = np.where(lung[self.box], self.value, 0.0)
        flat = np.flatnonzero(values > 0)
        if not len(flat):
            return []
        top = flat[np.argsort(-values.ravel()[flat], kind="stable")[: max(200 * count, 2000)]]
        offset = np.array([s.start for s in self.box])
        idx = np.array(np.unravel_index(top, values.shape)).T + offset
        mm = grid.to_mm(idx.astype(np.float64))
        kept: list[int] = []
        for i in range(len(top)):
            if not kept or np.linalg.norm(mm[kept] - mm[i], axis=1).min() > separation_mm:
                kept.append(i)
                if len(kept) == count:
                    break
        return [((int(idx[i][0]), int(idx[i][1]), int(idx[i][2])), float(values.ravel()[top[i]]),
                 float(self.sigma_mm.ravel()[top[i]])) for i in kept]


def dot_filter(hu: np.ndarray, lung: np.ndarray, grid: Grid, sigmas_mm: tuple[float, ...] = SIGMAS_MM) -> DotMap:
    """Multi-scale dot response of *hu* on the tissue voxels near *lung* (both on *grid*)."""
    near = ndimage.binary_dilation(lung, iterations=2)
    found = ndimage.find_objects(near.astype(np.uint8))
    if not found or found[0] is None:
        empty = (slice(0, 0),) * 3
        return DotMap(empty, np.zeros((0, 0, 0), np.float32), np.zeros((0, 0, 0), np.float32))  # type: ignore[arg-type]
    box = tuple(slice(max(s.start - 3, 0), min(s.stop + 3, n)) for s, n in zip(found[0], hu.shape, strict=True))
    image = np.clip(hu[box], -1000.0, 200.0).astype(np.float32)
    tissue = near[box] & (image > TISSUE_HU)
    tissue[[0, -1]] = False
    tissue[:, [0, -1]] = False
    tissue[:, :, [0, -1]] = False
    flat = np.flatnonzero(tissue)
    oz, oy, ox = image.shape[1] * image.shape[2], image.shape[2], 1
    sz, sy, sx = (float(v) for v in grid.spacing)
    best = np.zeros(len(flat), np.float32)
    scale = np.zeros(len(flat), np.float32)
    for sigma in sigmas_mm:
        smooth = ndimage.gaussian_filter(image, (sigma / sz, sigma / sy, sigma / sx)).ravel()
        centre = smooth[flat]

        def at(offset: int, smooth: np.ndarray = smooth) -> np.ndarray:
            return smooth[flat + offset]

        dzz = (at(oz) - 2 * centre + at(-oz)) / (sz * sz)
        dyy = (at(oy) - 2 * centre + at(-oy)) / (sy * sy)
        dxx = (at(ox) - 2 * centre + at(-ox)) / (sx * sx)
        dzy = (at(oz + oy) - at(oz - oy) - at(oy - oz) + at(-oz - oy)) / (4 * sz * sy)
        dzx = (at(oz + ox) - at(oz - ox) - at(ox - oz) + at(-oz - ox)) / (4 * sz * sx)
        dyx = (at(oy + ox) - at(oy - ox) - at(ox - oy) + at(-oy - ox)) / (4 * sy * sx)
        low, _, high = _sym_eigenvalues(dzz, dyy, dxx, dzy, dzx, dyx)
        dot = np.where(high < 0, high * high / np.maximum(np.abs(low), 1e-6), 0.0) * (sigma * sigma)
        better = dot > best
        best = np.where(better, dot, best).astype(np.float32)
        scale = np.where(better, np.float32(sigma), scale)
    value = np.zeros(image.shape, np.float32)
    sigma_map = np.zeros(image.shape, np.float32)
    value.ravel()[flat] = best
    sigma_map.ravel()[flat] = scale
    return DotMap(box, value, sigma_map)  # type: ignore[arg-type]
