"""Volumes to and from NIfTI-1 (nibabel), for ``training/``.

NIfTI stores voxels indexed ``(i, j, k)`` with an affine to RAS+ (+x towards
the patient's right, +y anterior, +z superior); DICOM and :class:`imaging.volume.Volume` use LPS+ and ``(k, r, c)`` order.
The LPS↔RAS flip is done in :func:`lps_ras_flip` and nowhere else.
"""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.errors import ImagingError
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

#: (k, r, c) volume axes ↔ (i, j, k) NIfTI axes: NIfTI i = column, j = row, k = slice.
_AXES = (2, 1, 0)


def lps_ras_flip(affine: np.ndarray) -> np.ndarray:
    """Map an affine to LPS into one to RAS (and back: the flip is its own inverse).

    Negates the x and y rows: x_RAS = -x_LPS, y_RAS = -y_LPS, z unchanged.
    """
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ np.asarray(affine, dtype=np.float64)


def _permute(affine: np.ndarray) -> np.ndarray:
    """Swap the affine's first and third index columns: (k, r, c) ↔ (c, r, k)."""
    return np.asarray(affine, dtype=np.float64)[:, [2, 1, 0, 3]]


def to_nifti(volume: Volume, array: np.ndarray | None = None) -> nib.Nifti1Image:
    """A NIfTI image of *volume* (or of *array*, e.g. a mask, on the volume's grid).

    Raises:
        ImagingError: *array* does not have the volume's shape.
    """
    data = volume.voxels if array is None else np.asarray(array)
    if data.shape != volume.shape:
        raise ImagingError(f"volume {volume.series_uid}: array shape {data.shape} is not {volume.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    affine = lps_ras_flip(_permute(volume.affine))
    image = nib.Nifti1Image(np.ascontiguousarray(data.transpose(_AXES)), affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)  # scanner anatomical
    image.set_sform(affine, code=1)
    return image


def from_nifti(image: nib.Nifti1Image, *, series_uid: str = "", study_uid: str = "",
               frame_of_reference_uid: str = "") -> Volume:
    """A :class:`Volume` (float32, no DICOM sources) from a 3-D NIfTI image.

    Raises:
        ImagingError: the image is not 3-D.
    """
    data = np.asanyarray(image.dataobj)
    if data.ndim != 3:
        raise ImagingError(f"NIfTI image of shape {data.shape}: expected 3 dimensions")
    affine = _permute(lps_ras_flip(image.affine))
    voxels = np.ascontiguousarray(data.transpose(_AXES), dtype=np.float32)
    return Volume(voxels=voxels, affine=affine, series_uid=series_uid, study_uid=study_uid,
                  frame_of_reference_uid=frame_of_reference_uid)


def save_nifti(volume: Volume, path: Path, array: np.ndarray | None = None) -> Path:
    """Write *volume* (or *array* on its grid) to *path* (``.nii`` or ``.nii.gz``); returns *path*."""
    nib.save(to_nifti(volume, array), str(path))
    LOGGER.debug("series %s: wrote %s", volume.series_uid, path)
    return Path(path)


def load_nifti(path: Path) -> Volume:
    """Read a 3-D NIfTI file into a :class:`Volume`.

    Raises:
        ImagingError: the file is not a 3-D NIfTI image.
    """
    image = nib.load(str(path))
    if not isinstance(image, nib.Nifti1Image):
        raise ImagingError(f"{path}: not a NIfTI-1/2 image ({type(image).__name__})")
    return from_nifti(image)
