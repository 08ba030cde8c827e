"""Chest anatomy of a calcium-score phantom, rendered slice by slice: body, lungs, heart with
epicardial fat, aorta, spine, ribs and sternum (bone is a confounder: it must never be counted)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.coronary_ct.geometry import AORTIC_ROOT_RADIUS_MM, FAT_MM, Heart

AIR, LUNG, FAT, SOFT, BLOOD = -1000.0, -850.0, -90.0, 45.0, 40.0
CORTEX, MARROW, DISC = 650.0, 230.0, 90.0
BONE_LABEL = 6


@dataclass(frozen=True)
class Anatomy:
    """Positions (mm) and sizes of the structures around the heart."""

    body_centre_y: float
    body_ax: float
    body_ay: float
    spine_y: float
    vertebra_r: float
    sternum_y: float
    sternum_z_min: float
    desc_aorta: tuple[float, float, float]  # x, y, radius
    asc_aorta_r: float
    rib_phase: float
    disc_phase: float

    @classmethod
    def random(cls, rng: np.random.Generator, heart: Heart) -> Anatomy:
        d = heart.apex_dir
        half_y = np.sqrt((heart.long_mm * d[1]) ** 2 + heart.short_mm**2 * (1 - d[1] ** 2)) + FAT_MM
        anterior, posterior = heart.centre[1] - half_y, heart.centre[1] + half_y
        sternum_y = anterior - rng.uniform(10, 18)
        front = sternum_y - rng.uniform(14, 22)
        vertebra_r = rng.uniform(15, 19)
        spine_y = posterior + rng.uniform(28, 38) + vertebra_r
        back = spine_y + vertebra_r + rng.uniform(45, 60)
        zlo, _ = heart.z_range
        return cls(
            body_centre_y=(front + back) / 2,
            body_ax=float(rng.uniform(140, 175)),
            body_ay=(back - front) / 2,
            spine_y=float(spine_y),
            vertebra_r=float(vertebra_r),
            sternum_y=float(sternum_y),
            sternum_z_min=float(zlo + rng.uniform(10, 30)),
            desc_aorta=(float(rng.uniform(18, 28)), float(spine_y - vertebra_r - rng.uniform(8, 14)),
                        float(rng.uniform(10, 13))),
            asc_aorta_r=float(rng.uniform(13, 16)),
            rib_phase=float(rng.uniform(0, 30)),
            disc_phase=float(rng.uniform(0, 26)),
        )


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def _bone(hu: np.ndarray, labels: np.ndarray, outer: np.ndarray, inner: np.ndarray, marrow: float) -> None:
    hu[outer] = CORTEX
    hu[inner] = marrow
    labels[outer] = BONE_LABEL


def _ribs(anat: Anatomy, x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Rib cross-sections: arcs of the rib cage whose angular position shifts with z (ribs are oblique)."""
    ax, ay = anat.body_ax - 20.0, anat.body_ay - 16.0
    rel_y = y - anat.body_centre_y
    rho = np.sqrt((x / ax) ** 2 + (rel_y / ay) ** 2)
    dist = (rho - 1.0) * min(ax, ay)
    theta = np.degrees(np.arctan2(np.abs(x), -rel_y))  # 0 anterior, 180 posterior, both sides
    side = np.where(x >= 0, 0.0, 11.0)
    present = np.mod(z + 1.3 * theta + side + anat.rib_phase, 26.0) < 9.0
    present &= (theta > 25) & (theta < 155)
    return present & (np.abs(dist) < 5.0), present & (np.abs(dist) < 3.2)


def render_slice(anat: Anatomy, heart: Heart, x: np.ndarray, y: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """HU image and truth labels (6 = bone, else 0) of the axial slice at height *z* (mm)."""
    hu = np.full(x.shape, AIR, dtype=np.float32)
    labels = np.zeros(x.shape, dtype=np.uint8)
    by, bax, bay = anat.body_centre_y, anat.body_ax, anat.body_ay
    hu[_ellipse(x, y, 0, by, bax, bay) <= 1] = FAT
    hu[_ellipse(x, y, 0, by, bax - 12, bay - 10) <= 1] = SOFT
    hu[_ellipse(x, y, 0, by, bax - 26, bay - 22) <= 1] = FAT
    for sign in (-1.0, 1.0):
        hu[_ellipse(x, y, sign * bax * 0.45, by + 8, bax * 0.4, bay * 0.72) <= 1] = LUNG
    pts = np.stack([x, y, np.full_like(x, z)], axis=-1)
    hu[heart.inside(pts, grow_mm=FAT_MM)] = FAT
    hu[heart.inside(pts)] = BLOOD
    root = heart.aortic_root
    if z >= root[2]:
        hu[_ellipse(x, y, root[0], root[1], anat.asc_aorta_r, anat.asc_aorta_r) <= 1] = BLOOD
    else:
        r = np.sqrt(max(AORTIC_ROOT_RADIUS_MM**2 - (z - root[2]) ** 2, 0.0))
        if r > 0:
            hu[_ellipse(x, y, root[0], root[1], r, r) <= 1] = BLOOD
    dx, dy, dr = anat.desc_aorta
    hu[_ellipse(x, y, dx, dy, dr, dr) <= 1] = BLOOD
    _spine(hu, labels, anat, x, y, z)
    outer, inner = _ribs(anat, x, y, z)
    _bone(hu, labels, outer, inner, MARROW)
    if z >= anat.sternum_z_min:
        _bone(hu, labels, _ellipse(x, y, 0, anat.sternum_y, 15, 7) <= 1,
              _ellipse(x, y, 0, anat.sternum_y, 13, 5) <= 1, 180.0)
    return hu, labels


def _spine(hu: np.ndarray, labels: np.ndarray, anat: Anatomy, x: np.ndarray, y: np.ndarray, z: float) -> None:
    r, sy = anat.vertebra_r, anat.spine_y
    body = _ellipse(x, y, 0, sy, r, r * 0.9) <= 1
    if np.mod(z + anat.disc_phase, 26.0) < 6.0:
        hu[body] = DISC
    else:
        _bone(hu, labels, body, _ellipse(x, y, 0, sy, r - 2.2, r * 0.9 - 2.2) <= 1, MARROW)
    canal_y = sy + r + 8.0
    lamina = (_ellipse(x, y, 0, canal_y, 14, 13) <= 1) & (y > canal_y - 4)
    canal = _ellipse(x, y, 0, canal_y, 8, 7) <= 1
    spinous = _ellipse(x, y, 0, canal_y + 20, 4, 11) <= 1
    transverse = (_ellipse(x, y, 0, canal_y + 2, 34, 5) <= 1) & ~canal
    posterior = (lamina | spinous | transverse) & ~canal
    hu[posterior] = 420.0
    labels[posterior] = BONE_LABEL
    hu[canal] = 10.0
    labels[canal] = 0
