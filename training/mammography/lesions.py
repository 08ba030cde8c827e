"""Rendering of lesions and confounders into a 2D mammography phantom (canonical orientation).

All sizes are in millimetres and converted with the pixel spacing; every renderer adds
into a local window of the image (never the whole image) and returns the truth it made.
Intensities are in the phantom's relative attenuation units (fat at full thickness = 1.0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Window:
    """A clipped rectangular window of an image: rows r0..r1, cols c0..c1 (exclusive ends), pixels."""

    r0: int
    r1: int
    c0: int
    c1: int

    @classmethod
    def around(cls, shape: tuple[int, int], centre_rc: tuple[float, float], half_px: float) -> Window:
        r, c = centre_rc
        h = int(np.ceil(half_px))
        return cls(max(0, int(r) - h), min(shape[0], int(r) + h + 1), max(0, int(c) - h), min(shape[1], int(c) + h + 1))

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r1), slice(self.c0, self.c1)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates (rows, cols) of the window, as 2D float arrays."""
        rr, cc = np.mgrid[self.r0:self.r1, self.c0:self.c1]
        return rr.astype(np.float64), cc.astype(np.float64)


@dataclass(frozen=True)
class MassSpec:
    """A soft-tissue mass. ``diameter_mm`` is the long axis of the core; ``contrast`` is relative attenuation."""

    centre_rc: tuple[float, float]
    diameter_mm: float
    aspect: float
    angle_rad: float
    spiculated: bool
    contrast: float
    lobulation: tuple[tuple[int, float, float], ...]  # (harmonic k, amplitude, phase)
    spicules: tuple[tuple[float, float, float], ...]  # (angle rad, length as fraction of radius, width mm)
    margin_blur_mm: float


def render_mass(image: np.ndarray, thickness: np.ndarray, spec: MassSpec, spacing_mm: float) -> np.ndarray:
    """Add a mass (ellipsoid dome, lobulated or spiculated) to *image* in place.

    Returns the boolean core mask (full image shape): the truth region of the mass.
    """
    radius_px = spec.diameter_mm / 2.0 / spacing_mm
    reach = radius_px * (2.8 if spec.spiculated else 1.3) + 4
    win = Window.around(image.shape, spec.centre_rc, reach)
    rr, cc = win.grid()
    dy, dx = rr - spec.centre_rc[0], cc - spec.centre_rc[1]
    cos_a, sin_a = np.cos(spec.angle_rad), np.sin(spec.angle_rad)
    u = dx * cos_a + dy * sin_a
    v = -dx * sin_a + dy * cos_a
    phi = np.arctan2(v, u)
    wobble = 1.0 + sum(a * np.cos(k * phi + p) for k, a, p in spec.lobulation)
    rho = np.sqrt((u / radius_px) ** 2 + (v / (radius_px * spec.aspect)) ** 2) / wobble
    dome = np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0))
    if spec.margin_blur_mm > 0:
        dome = ndimage.gaussian_filter(dome, spec.margin_blur_mm / spacing_mm)
    add = spec.contrast * dome
    for angle, length, width_mm in spec.spicules:
        add += 0.45 * spec.contrast * _spicule(u, v, radius_px, angle, length * radius_px, width_mm / spacing_mm)
    local_t = thickness[win.slices]
    image[win.slices] += (add * local_t).astype(image.dtype)
    mask = np.zeros(image.shape, dtype=bool)
    mask[win.slices] = rho <= 1.0
    return mask


def _spicule(u: np.ndarray, v: np.ndarray, radius_px: float, angle: float, length_px: float,
             width_px: float) -> np.ndarray:
    """A tapered line from 0.7 × radius outwards along *angle*: Gaussian profile across, linear taper along."""
    du, dv = np.cos(angle), np.sin(angle)
    start = 0.7 * radius_px
    along = u * du + v * dv - start
    across = -u * dv + v * du
    total = length_px + 0.3 * radius_px
    inside = (along >= 0) & (along <= total)
    taper = np.clip(1.0 - along / total, 0.0, 1.0)
    w = max(width_px, 0.5) * (0.4 + 0.6 * taper)
    return np.where(inside, np.exp(-0.5 * (across / w) ** 2) * taper, 0.0)


@dataclass(frozen=True)
class Calcification:
    """One calcification: centre (pixels), semi-axes (mm), angle, peak contrast."""

    centre_rc: tuple[float, float]
    semi_axes_mm: tuple[float, float]
    angle_rad: float
    contrast: float


def render_calcifications(image: np.ndarray, calcs: list[Calcification], spacing_mm: float) -> None:
    """Add calcifications with partial-volume (supersampled area coverage) to *image* in place."""
    s = _SUPERSAMPLE
    for calc in calcs:
        half = max(calc.semi_axes_mm) / spacing_mm + 2
        win = Window.around(image.shape, calc.centre_rc, half)
        if win.r1 <= win.r0 or win.c1 <= win.c0:
            continue
        n_r, n_c = win.r1 - win.r0, win.c1 - win.c0
        sub = (np.arange(s) + 0.5) / s - 0.5
        rr = (win.r0 + np.arange(n_r)[:, None] + sub[None, :]).reshape(-1)
        cc = (win.c0 + np.arange(n_c)[:, None] + sub[None, :]).reshape(-1)
        dy = (rr[:, None] - calc.centre_rc[0]) * spacing_mm
        dx = (cc[None, :] - calc.centre_rc[1]) * spacing_mm
        cos_a, sin_a = np.cos(calc.angle_rad), np.sin(calc.angle_rad)
        u = dx * cos_a + dy * sin_a
        v = -dx * sin_a + dy * cos_a
        a, b = calc.semi_axes_mm
        inside = ((u / a) ** 2 + (v / b) ** 2 <= 1.0).astype(np.float32)
        coverage = inside.reshape(n_r, s, n_c, s).mean(axis=(1, 3))
        image[win.slices] += (calc.contrast * coverage).astype(image.dtype)


def cluster_region(shape: tuple[int, int], calcs: list[Calcification], spacing_mm: float,
                   margin_mm: float = 2.0) -> np.ndarray:
    """Truth region of a calcification cluster: discs of *margin_mm* around each calcification, closed and filled."""
    mask = np.zeros(shape, dtype=bool)
    for calc in calcs:
        r, c = int(round(calc.centre_rc[0])), int(round(calc.centre_rc[1]))
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            mask[r, c] = True
    radius = max(1, int(round(margin_mm / spacing_mm)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = yy**2 + xx**2 <= radius**2
    mask = ndimage.binary_dilation(mask, structure=disc)
    mask = ndimage.binary_closing(mask, structure=disc, iterations=2)
    return ndimage.binary_fill_holes(mask)


def render_curve(image: np.ndarray, points_rc: np.ndarray, width_px: float, contrast: float) -> None:
    """Add a line along densely sampled *points_rc* (N, 2) with a Gaussian cross-profile, in place."""
    if len(points_rc) == 0:
        return
    lo = np.floor(points_rc.min(axis=0) - 4 * width_px - 2).astype(int)
    hi = np.ceil(points_rc.max(axis=0) + 4 * width_px + 2).astype(int)
    r0, c0 = max(0, lo[0]), max(0, lo[1])
    r1, c1 = min(image.shape[0], hi[0]), min(image.shape[1], hi[1])
    if r1 <= r0 or c1 <= c0:
        return
    rr, cc = np.mgrid[r0:r1, c0:c1]
    dist, _ = cKDTree(points_rc).query(np.stack([rr.ravel(), cc.ravel()], axis=1),
                                       distance_upper_bound=4 * width_px + 1)
    dist = np.where(np.isfinite(dist), dist, 1e6).reshape(rr.shape)
    image[r0:r1, c0:c1] += (contrast * np.exp(-0.5 * (dist / width_px) ** 2)).astype(image.dtype)


def bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, step_px: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) and unit normals (N, 2) of a quadratic Bézier curve sampled every ~*step_px*."""
    length = np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
    t = np.linspace(0.0, 1.0, max(8, int(length / step_px)))[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    tangent = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return pts, normal
