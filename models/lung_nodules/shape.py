"""Where a nodule is (side, zone, pleura) and the Lung-RADS v2022 benign features of a juxtapleural one.

Benign features (:func:`juxtapleural_features`), measured on the nodule's outline from its moment-
equivalent ellipsoid (semi-axes ``sqrt(5 * eigenvalue)`` of the voxel coordinates' covariance):
- smooth margin: the outline fills its ellipsoid (volume ratio 0.8-1.2); lobulated or spiculated
  outlines fall outside;
- shape: round when the shortest semi-axis is >= 0.85 of the longest; oval or lentiform when it is
  < 0.75 (lentiform, a lens, when the middle one is >= 0.8 of the longest, oval otherwise);
  uncertain in between. Triangular is not told apart (it reads as oval or as not smooth);
- fewer than 20 voxels: margin and shape uncertain.
An uncertain or failing feature keeps the size category (:mod:`lungrads`).

The pleura is the costal or mediastinal pleura (:func:`chest_wall`) or a fissure (:func:`on_fissure`:
Lung-RADS v2022 counts the fissural pleura too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.lung_nodules.lungrads import JuxtapleuralFeatures, PleuralShape

JUXTA_SHELL_FRACTION = 0.02  # of the nodule's in-plane shell (1.5 mm wide) lying on chest wall
JUXTA_SHELL_MM = 1.5
JUXTA_REACH_MM = 3.0  # chest wall: soft tissue within this distance of the nodule that continues outside the lung
WALL_HU = -300.0
_FULL = np.ones((3, 3, 3), dtype=bool)
_IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=bool)
OVAL_RATIO = (0.8, 1.2)  # volume / volume of the moment-equivalent ellipsoid: smooth margin
ROUND_RATIO = 0.85  # shortest / longest equivalent semi-axis at or above this: round
ELONGATED_RATIO = 0.75  # below this: oval or lentiform; in between: uncertain
LENTIFORM_RATIO = 0.8  # middle / longest semi-axis at or above this (and elongated): lentiform, else oval
MIN_FEATURE_VOXELS = 20


@dataclass(frozen=True)
class Location:
    """Side (right/left: patient's), zone (upper/middle/lower third of the lungs' height), pleura contact."""

    side: str
    zone: str
    juxtapleural: bool
    benign_features: bool = False
    in_lung: bool = True
    features: JuxtapleuralFeatures | None = None  # juxtapleural solid nodules: the measured benign features
    fissural: bool = False  # attached to a fissure (the fissural pleura), see on_fissure; then juxtapleural too


def locate(centre_mm: np.ndarray, mask: np.ndarray, lung: np.ndarray | None, hu: np.ndarray,
           extent: tuple[float, float, float] | None, spacing: tuple[float, float, float] = (1.0, 0.7, 0.7)
           ) -> Location:
    """Side from the lungs' midline (LPS +x is the patient's left), zone by thirds of the lungs' z range.

    Juxtapleural: at least 2 % of the in-plane shell (1.5 mm wide) around the nodule is chest wall or
    mediastinum, see :func:`chest_wall`. Without a lung mask: the image centre is the midline, zone
    "unknown", never juxtapleural. *spacing*: the voxel size of *mask*, *lung* and *hu* (mm).
    """
    if extent is None or lung is None:
        return Location("left" if centre_mm[0] > 0 else "right", "unknown", False)
    midline, z_lo, z_hi = extent
    third = (z_hi - z_lo) / 3.0
    z = float(centre_mm[2])
    zone = "lower" if z < z_lo + third else ("middle" if z < z_hi - third else "upper")
    steps = max(1, int(round(JUXTA_SHELL_MM / spacing[2])))
    shell = ndimage.binary_dilation(mask, structure=_IN_PLANE, iterations=steps) & ~mask
    wall = shell & chest_wall(mask, lung, hu, spacing)
    juxta = bool(shell.any() and wall.sum() >= JUXTA_SHELL_FRACTION * shell.sum())
    idx = tuple(int(round(v)) for v in np.argwhere(mask).mean(axis=0))
    in_lung = bool(lung[idx]) or bool((lung & mask).any())
    fissural = not juxta and on_fissure(mask, hu, spacing)
    return Location("left" if centre_mm[0] > midline else "right", zone, juxta or fissural, False, in_lung,
                    fissural=fissural)


FISSURE_RING_MM = (1.5, 6.0)  # the lung around the nodule where its fissure is looked for
FISSURE_BAND_MM = 1.5  # half width of the band around the nodule's flat plane (at least one slice)
FISSURE_RISE_HU = 40.0  # the band's mean HU above the rest of the ring's: a sheet of tissue along that plane
FISSURE_HU = (-1000.0, -300.0)  # HU clipped to this range first: vessels and walls do not count as fissure


def on_fissure(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """Whether a flattened nodule *mask* lies on a fissure: the lung 1.5-6 mm around it is denser within
    1.5 mm (at least half a slice) of the nodule's flat plane than off it, by at least 40 HU on average
    (HU clipped to -1000..-300, so a vessel or the chest wall weighs no more than a fissure line). A fissure
    is a sheet of about -500 to -700 HU in lung of about -850; a nodule on it lies in its plane, flat along
    it. Only a nodule whose shortest equivalent semi-axis is < 0.75 of its longest has a flat plane to test
    (a round nodule on a fissure keeps its size category anyway: :mod:`lungrads`); fewer than 20 voxels: False.
    """
    pts = np.argwhere(mask) * np.array(spacing)
    if len(pts) < MIN_FEATURE_VOXELS:
        return False
    eig, vec = np.linalg.eigh(np.cov(pts.T))
    eig = np.clip(eig, 1e-9, None)
    if np.sqrt(eig[0] / eig[2]) >= ELONGATED_RATIO:
        return False
    normal, centre = vec[:, 0], pts.mean(axis=0)
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing)
    ring = (dist >= FISSURE_RING_MM[0]) & (dist <= FISSURE_RING_MM[1])
    idx = np.argwhere(ring)
    off_plane = np.abs((idx * np.array(spacing) - centre) @ normal)
    band = off_plane <= max(FISSURE_BAND_MM, 0.5 * max(spacing))
    if band.sum() < 10 or (~band).sum() < 10:
        return False
    values = np.clip(hu[ring], *FISSURE_HU)
    return bool(values[band].mean() - values[~band].mean() >= FISSURE_RISE_HU)


def chest_wall(mask: np.ndarray, lung: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float]
               ) -> np.ndarray:
    """Soft tissue (> -300 HU) next to the nodule *mask* that is chest wall or mediastinum.

    The lung mask is made on a 2 mm grid and closed (so that juxtapleural nodules belong to it): its edge
    can lie inside the chest wall (on the phantoms, 0.8-3.4 mm from nodules placed 0.3 mm from the pleura).
    So the wall is not "tissue outside the lung mask" but the soft tissue within 3 mm of the nodule that
    is connected, within those 3 mm, to tissue outside the lung mask. A vessel touching the nodule is tissue too, but within 3 mm of a nodule away
    from the pleura it does not reach outside the lung.
    """
    tissue = (hu > WALL_HU) & ~mask
    near = ndimage.distance_transform_edt(~mask, sampling=spacing) <= JUXTA_REACH_MM
    local = tissue & near
    labels, n = ndimage.label(local, structure=_FULL)
    if n == 0:
        return local
    outside = np.unique(labels[local & ~lung])
    return np.isin(labels, outside[outside > 0])


def juxtapleural_features(mask: np.ndarray, spacing: tuple[float, float, float]) -> JuxtapleuralFeatures:
    """Smooth margin and shape of a nodule *mask* (voxel size *spacing*, mm), see the module docstring."""
    pts = np.argwhere(mask) * np.array(spacing)
    if len(pts) < MIN_FEATURE_VOXELS:
        return JuxtapleuralFeatures(None, PleuralShape.UNCERTAIN)
    eig = np.sort(np.clip(np.linalg.eigvalsh(np.cov(pts.T)), 1e-9, None))
    semi = np.sqrt(5.0 * eig)  # shortest, middle, longest
    fit = 4.0 / 3.0 * np.pi * float(np.prod(semi))
    fill = len(pts) * float(np.prod(spacing)) / fit
    smooth = OVAL_RATIO[0] <= fill <= OVAL_RATIO[1]
    ratio = float(semi[0] / semi[2])
    if ratio >= ROUND_RATIO:
        shape = PleuralShape.ROUND
    elif ratio < ELONGATED_RATIO:
        shape = PleuralShape.LENTIFORM if semi[1] / semi[2] >= LENTIFORM_RATIO else PleuralShape.OVAL
    else:
        shape = PleuralShape.UNCERTAIN
    return JuxtapleuralFeatures(smooth, shape)
