"""Where a nodule is (side, zone, pleura) and whether its shape is oval (a Lung-RADS benign feature)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

JUXTA_SHELL_FRACTION = 0.03  # of the nodule's in-plane shell (1.5 mm wide) lying on chest wall
JUXTA_SHELL_MM = 1.5
_IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=bool)
OVAL_RATIO = (0.8, 1.2)  # volume / volume of the moment-equivalent ellipsoid


@dataclass(frozen=True)
class Location:
    """Side (right/left: patient's), zone (upper/middle/lower third of the lungs' height), pleura contact."""

    side: str
    zone: str
    juxtapleural: bool
    benign_features: bool = False
    in_lung: bool = True


def locate(centre_mm: np.ndarray, mask: np.ndarray, lung: np.ndarray | None, hu: np.ndarray,
           extent: tuple[float, float, float] | None, pixel_mm: float = 0.7) -> Location:
    """Side from the lungs' midline (LPS +x is the patient's left), zone by thirds of the lungs' z range.

    Juxtapleural: at least 3 % of the in-plane shell (1.5 mm wide) around the nodule is soft tissue
    (> -300 HU) outside the lung mask, i.e. chest wall or mediastinum. Without a lung mask: the image centre
    is the midline, zone "unknown", never juxtapleural.
    """
    if extent is None or lung is None:
        return Location("left" if centre_mm[0] > 0 else "right", "unknown", False)
    midline, z_lo, z_hi = extent
    third = (z_hi - z_lo) / 3.0
    z = float(centre_mm[2])
    zone = "lower" if z < z_lo + third else ("middle" if z < z_hi - third else "upper")
    steps = max(1, int(round(JUXTA_SHELL_MM / pixel_mm)))
    shell = ndimage.binary_dilation(mask, structure=_IN_PLANE, iterations=steps) & ~mask
    wall = shell & ~lung & (hu > -300.0)
    juxta = bool(shell.any() and wall.sum() >= JUXTA_SHELL_FRACTION * shell.sum())
    idx = tuple(int(round(v)) for v in np.argwhere(mask).mean(axis=0))
    in_lung = bool(lung[idx]) or bool((lung & mask).any())
    return Location("left" if centre_mm[0] > midline else "right", zone, juxta, False, in_lung)


def is_oval(mask: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """True when *mask* fills its moment-equivalent ellipsoid (volume ratio 0.8-1.2): smooth and oval.

    For a solid ellipsoid of semi-axes a, b, c the second moments are a^2/5 …, so the
    equivalent semi-axes are sqrt(5 * eigenvalue). Lobulated or spiculated shapes fall outside.
    """
    pts = np.argwhere(mask) * np.array(spacing)
    if len(pts) < 10:
        return True
    eig = np.clip(np.linalg.eigvalsh(np.cov(pts.T)), 1e-9, None)
    fit = 4.0 / 3.0 * np.pi * float(np.prod(np.sqrt(5.0 * eig)))
    volume = len(pts) * float(np.prod(spacing))
    return OVAL_RATIO[0] <= volume / fit <= OVAL_RATIO[1]
