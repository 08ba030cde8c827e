"""Voxel grids in patient space (LPS, mm) and resampling between aligned grids (on the array backend).

Convention: an array ``a[i0, i1, i2]`` comes with a 4x4 ``affine`` mapping the homogeneous index
``(i0, i1, i2, 1)`` (the array's own axis order) to LPS millimetres. For an axial CT sorted from
feet to head, ``i0`` is the slice (+z), ``i1`` the row (+y, posterior) and ``i2`` the column
(+x, patient left). Spacing along each array axis is the norm of the affine's column.
"""
from __future__ import annotations

import numpy as np

from imaging.backend import ArrayBackend
from imaging.geometry import Grid
from imaging.preprocess import resample_array
from models.errors import ModelError

__all__ = ["GeometryError", "Grid", "index_map", "reorient_axial", "resample"]


class GeometryError(ModelError):
    """Grids that do not fit together (different orientation, bad affine)."""


def index_map(source: Grid, target: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis (scale, offset) with ``source_index = scale * target_index + offset``.

    Raises:
        GeometryError: the grids are not axis-aligned with each other (one is rotated or permuted).
    """
    m = np.linalg.inv(source.affine) @ target.affine
    lin = m[:3, :3]
    if np.abs(lin - np.diag(np.diag(lin))).max() > 1e-6 * np.abs(lin).max():
        raise GeometryError("grids are not aligned (rotated or permuted axes); cannot resample separably")
    return np.diag(lin).copy(), m[:3, 3].copy()


def resample(array: np.ndarray, source: Grid, target: Grid, fill: float = 0.0,
             backend: ArrayBackend | None = None) -> np.ndarray:
    """Trilinear resampling of *array* on *source* onto the aligned *target* grid, float32 numpy, on
    *backend* (numpy when None; see :func:`imaging.preprocess.resample_array`).

    Raises:
        GeometryError: grids not aligned, or *array* does not have the source shape.
    """
    if tuple(array.shape) != tuple(source.shape):
        raise GeometryError(f"array shape {array.shape} differs from its grid {source.shape}")
    index_map(source, target)  # refuses rotated or permuted grids
    backend = backend or ArrayBackend.numpy()
    out = resample_array(np.asarray(array, dtype=np.float32), source.affine, target.affine, target.shape, backend,
                         cval=fill)
    return np.ascontiguousarray(backend.to_numpy(out), dtype=np.float32)


def reorient_axial(array: np.ndarray, grid: Grid) -> tuple[np.ndarray, Grid]:
    """Permute and flip array axes so that i0 runs to +z (feet to head), i1 to +y and i2 to +x.

    The voxel values are not interpolated; the affine is rewritten to match. For an oblique
    acquisition the nearest axes are chosen.

    Raises:
        GeometryError: *array* does not have the grid's shape, or two axes point the same way.
    """
    if tuple(array.shape) != tuple(grid.shape):
        raise GeometryError(f"array shape {array.shape} differs from its grid {grid.shape}")
    directions = grid.affine[:3, :3] / np.array(grid.spacing)
    world_of_axis = [int(np.argmax(np.abs(directions[:, k]))) for k in range(3)]
    if sorted(world_of_axis) != [0, 1, 2]:
        raise GeometryError(f"array axes point along world axes {world_of_axis}: cannot make them axial")
    order = [world_of_axis.index(w) for w in (2, 1, 0)]  # array axis for z, y, x
    out = np.transpose(array, order)
    affine = grid.affine.copy()
    affine[:, :3] = grid.affine[:, order]
    flips = []
    for new_axis, world in enumerate((2, 1, 0)):
        if affine[world, new_axis] < 0:
            flips.append(new_axis)
            affine[:3, 3] = affine[:3, 3] + affine[:3, new_axis] * (out.shape[new_axis] - 1)
            affine[:3, new_axis] = -affine[:3, new_axis]
    if flips:
        out = np.flip(out, axis=tuple(flips))
    return np.ascontiguousarray(out), Grid(tuple(out.shape), affine)  # type: ignore[arg-type]
