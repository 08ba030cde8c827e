"""Heart, aorta and coronary tree geometry of a calcium-score phantom, in patient mm (LPS).

The heart is an ellipsoid whose long axis points to the apex (left, anterior, inferior).
Positions on its surface are given by ``w`` along the long axis (-1 base … +1 apex) and an
angle around it (0 anterior, +90° left lateral, 180° inferior/posterior, -90° right). The
coronaries run in the epicardial fat: LM from the aortic root to the bifurcation, LAD down
the anterior interventricular groove, LCx along the left atrioventricular groove, RCA along
the right atrioventricular groove to the crux and down the posterior groove.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.coronary_ct.calcium import Vessel

AV_GROOVE_W = -0.55
FAT_MM = 7.0  # epicardial fat thickness around the heart
VESSEL_OFFSET_MM = 3.0  # vessel centre line above the myocardial surface
AORTIC_ROOT_RADIUS_MM = 13.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Heart:
    """Heart ellipsoid: centre (mm), apex direction, long/short semi-axes (mm)."""

    centre: np.ndarray
    apex_dir: np.ndarray
    long_mm: float
    short_mm: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> Heart:
        alpha = np.deg2rad(rng.uniform(35, 55))  # from anterior toward the left
        beta = np.deg2rad(rng.uniform(25, 45))  # below the axial plane
        d = np.array([np.sin(alpha) * np.cos(beta), -np.cos(alpha) * np.cos(beta), -np.sin(beta)])
        centre = np.array([rng.uniform(5, 25), rng.uniform(-15, 0), 0.0])
        return cls(centre, d, float(rng.uniform(48, 60)), float(rng.uniform(36, 46)))

    @property
    def frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(apex direction, anterior, left) orthonormal vectors."""
        d = self.apex_dir
        a0 = np.array([0.0, -1.0, 0.0])
        e_a = _unit(a0 - np.dot(a0, d) * d)
        e_l = np.cross(e_a, d)
        return d, e_a, e_l

    def axis_point(self, w: float) -> np.ndarray:
        return self.centre + w * self.long_mm * self.apex_dir

    def surface(self, w: float, angle_deg: float, offset_mm: float = 0.0) -> np.ndarray:
        """A point on (or *offset_mm* outside) the ellipsoid at long-axis position *w* and *angle_deg*."""
        d, e_a, e_l = self.frame
        a = np.deg2rad(angle_deg)
        radius = self.short_mm * np.sqrt(max(1.0 - w * w, 0.0)) + offset_mm
        return self.axis_point(w) + radius * (np.cos(a) * e_a + np.sin(a) * e_l)

    def inside(self, pts: np.ndarray, grow_mm: float = 0.0) -> np.ndarray:
        """Boolean: points (…, 3) inside the ellipsoid grown by *grow_mm*."""
        d, e_a, e_l = self.frame
        rel = pts - self.centre
        u = rel @ d / (self.long_mm + grow_mm)
        a = rel @ e_a / (self.short_mm + grow_mm)
        b = rel @ e_l / (self.short_mm + grow_mm)
        return u * u + a * a + b * b <= 1.0

    @property
    def aortic_root(self) -> np.ndarray:
        _, e_a, e_l = self.frame
        return self.axis_point(-0.9) + 12.0 * e_a - 2.0 * e_l

    @property
    def z_range(self) -> tuple[float, float]:
        d = self.apex_dir
        half = np.sqrt((self.long_mm * d[2]) ** 2 + self.short_mm**2 * (1 - d[2] ** 2))
        return float(self.centre[2] - half), float(self.centre[2] + half)


def _resample(points: list[np.ndarray], step_mm: float = 0.5) -> np.ndarray:
    """A polyline through *points*, resampled every *step_mm*."""
    pts = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1], step_mm)
    return np.stack([np.interp(t, s, pts[:, i]) for i in range(3)], axis=1)


def _arc(heart: Heart, ws: np.ndarray, angles: np.ndarray) -> list[np.ndarray]:
    return [heart.surface(float(w), float(a), VESSEL_OFFSET_MM) for w, a in zip(ws, angles)]


def coronary_paths(heart: Heart, rng: np.random.Generator) -> dict[Vessel, np.ndarray]:
    """Centre lines (n, 3) in mm of LM, LAD, LCx and RCA, sampled every 0.5 mm."""
    root = heart.aortic_root
    w_av = AV_GROOVE_W + rng.uniform(-0.05, 0.05)
    lad_angle = rng.uniform(15, 30)
    bifurcation = heart.surface(w_av - 0.08, lad_angle + 10, VESSEL_OFFSET_MM)
    ostium_l = root + AORTIC_ROOT_RADIUS_MM * _unit(bifurcation - root)
    rca_start = heart.surface(w_av - 0.05, -25, VESSEL_OFFSET_MM)
    ostium_r = root + AORTIC_ROOT_RADIUS_MM * _unit(rca_start - root)
    n = 40
    lad_w = np.linspace(w_av, 0.92, n)
    lad = [bifurcation, *_arc(heart, lad_w, np.linspace(lad_angle, 0.0, n))]
    lcx_end = rng.uniform(130, 165)
    lcx = [bifurcation, *_arc(heart, np.full(n, w_av), np.linspace(lad_angle + 25, lcx_end, n))]
    ring = _arc(heart, np.full(n, w_av), np.linspace(-25, -178, n))
    pda = _arc(heart, np.linspace(w_av, rng.uniform(-0.1, 0.3), n // 2), np.full(n // 2, -180.0))
    rca = [ostium_r, *ring, *pda]
    return {
        Vessel.LM: _resample([ostium_l, bifurcation]),
        Vessel.LAD: _resample(lad),
        Vessel.LCX: _resample(lcx),
        Vessel.RCA: _resample(rca),
    }
