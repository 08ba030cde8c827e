"""Where a solid nodule's outline may grow past the network's probability: its CT body.

The network's probability can cover a solid nodule only in part (on a vessel, on the pleura); its core
then measures too small. :func:`grown_body` gives the part of the nodule's HU body (the HU outline
``>= 0.5``, :mod:`candidates`) the outline may grow into: what survives an opening by a ball of
``grow_open_mm`` (vessels thinner than the ball do not) and overlaps the core.

A nodule on the costal or mediastinal pleura has an HU body that continues into the chest wall. The wall
is then cut off at the pleura first, by a rolling ball (:func:`chest_wall_beside`): the wall is the tissue
covered by balls that fit in it but not in the nodule (the smallest of :data:`WALL_BALLS_MM` that leaves
the network's core outside), so the pleural line is reconstructed under the nodule and the nodule is
measured up to it. Before this, a nodule whose body came near tissue outside the lung mask did not grow at
all, and juxtapleural nodules were measured from the network's probability alone, which fades towards
the wall: family-B round juxtapleural nodules measured 0.75 mm and triangular ones 1.85 mm small.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

FULL = np.ones((3, 3, 3), dtype=bool)
#: Ball radii (mm) tried in turn to tell the chest wall from a nodule on it: the first one that does not
#: fit in the nodule (it leaves at least half of the network's core uncovered). A nodule wider than 20 mm
#: keeps every ball: it does not grow (its own probability covers it; measured as before).
WALL_BALLS_MM = (2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0)
#: The grown body may leave the lung mask only this many ``grow_open_mm`` from the wall (the coarse lung
#: mask's edge can lie inside a nodule on the pleura); anywhere else it is not a nodule on the wall.
WALL_REACH = 2.0


def ball(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """A ball of *radius_mm* on a grid of *spacing* (mm), as a structuring element."""
    half = [int(radius_mm // s) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True))
    return np.asarray(d2 <= radius_mm ** 2 + 1e-9)


def on_border(mask: np.ndarray) -> bool:
    """Whether *mask* reaches a face of its array (a crop: what it outlines continues beyond)."""
    return any(mask.take(i, axis=a).any() for a in range(mask.ndim) for i in (0, -1))


def ball_opening(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Opening of *mask* by a ball of *radius_mm* (the union of the balls that fit in it), by distance
    transforms; beyond the array *mask* continues as at its faces (a crop of a thicker wall stays thick)."""
    pad = [int(math.ceil(radius_mm / s)) + 1 for s in spacing]
    padded = np.pad(mask, [(p, p) for p in pad], mode="edge")
    eroded = ndimage.distance_transform_edt(padded, sampling=spacing) > radius_mm
    if not eroded.any():
        return np.zeros_like(mask)
    opened = ndimage.distance_transform_edt(~eroded, sampling=spacing) <= radius_mm
    return opened[tuple(slice(p, p + n) for p, n in zip(pad, mask.shape, strict=True))]  # type: ignore[no-any-return]


def chest_wall_beside(full: np.ndarray, core: np.ndarray, spacing: tuple[float, float, float]
                      ) -> tuple[np.ndarray, float] | None:
    """The wall in the tissue *full* beside a nodule whose *core* lies in it, and the ball radius (mm) that
    found it: the union of the balls of the smallest radius of :data:`WALL_BALLS_MM` that leaves at least half
    of *core* uncovered (such a ball fits in the wall, not in the nodule). None when every radius covers the
    core (a nodule wider than them)."""
    for radius in WALL_BALLS_MM:
        wall = ball_opening(full, radius, spacing)
        if 2 * int((wall & core).sum()) <= int(core.sum()):
            return wall, radius
    return None


def _bodies(opened: np.ndarray, core: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(opened, structure=FULL)
    if n == 0:
        return opened
    return np.isin(labels, np.unique(labels[core & opened]).tolist())


def _rim(body: np.ndarray, full: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """The voxels of the tissue *full* around *body* that a ball opening leaves out on a voxel grid (its discrete
    ball stays about half a voxel inside a nodule's edge), less those next to tissue that goes on past them (the
    stump of a vessel) and those next to the *wall*: the nodule's own edge, not what it touches."""
    near = ndimage.binary_dilation(body, structure=FULL)
    beyond = (full & ~near) | wall
    return near & full & ~body & ~ndimage.binary_dilation(beyond, structure=FULL)


def _beside_wall(full: np.ndarray, core: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float],
                 radius_mm: float) -> np.ndarray:
    """The body of a nodule whose HU body reaches tissue outside the lung, less the wall (empty when that is
    not a wall, or when the HU body stays in the lung: then the nodule is thinner than the ball, and nothing
    is grown, as before)."""
    if not (_bodies(full, core) & ~lung).any():
        return np.zeros_like(full)
    found = chest_wall_beside(full, core, spacing)
    if found is None:
        return np.zeros_like(full)
    wall, wall_mm = found  # the nodule is narrower than a ball of wall_mm: the vessel ball at most half that
    vessel = ball(min(radius_mm, wall_mm / 2.0), spacing)
    body = _bodies(ndimage.binary_opening(full & ~wall, structure=vessel), core)
    body |= _rim(body, full, wall)
    far = ndimage.distance_transform_edt(~wall, sampling=spacing) > WALL_REACH * radius_mm if wall.any() \
        else np.ones_like(wall)
    return np.zeros_like(full) if (body & ~lung & far).any() else body


def grown_body(full: np.ndarray, core: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float],
               radius_mm: float) -> np.ndarray:
    """Where a solid nodule's outline may grow beyond the network's *core*: the parts of the HU outline *full*
    that survive an opening by a ball of *radius_mm* and overlap *core*.

    When that body comes within *radius_mm* of tissue outside the *lung* mask, or is empty while the HU body
    reaches outside it (a nodule on the chest wall or the mediastinum, whose HU body does not end at the
    nodule), the wall is taken out first (:func:`chest_wall_beside`) and the opening redone with a ball of at
    most half the wall's (a small nodule is thinner than *radius_mm*), plus the nodule's own edge voxels
    (:func:`_rim`); nothing is grown when no ball tells the wall from the nodule, or when the body still
    leaves the lung more than ``WALL_REACH * radius_mm`` from the wall (it is not a nodule on the wall).
    Nothing is grown either when the body reaches the edge of the crop: a vessel thicker than the ball (or a
    vessel junction) continues beyond it. A nodule whose body stays in the lung grows as before.
    """
    small = ball(radius_mm, spacing)
    body = _bodies(ndimage.binary_opening(full, structure=small), core)
    if not body.any() or (ndimage.binary_dilation(body, structure=small) & ~lung).any():
        body = _beside_wall(full, core, lung, spacing, radius_mm)
    if on_border(body):
        return np.zeros_like(body)
    return body
