"""Geometry round trip: series → Volume → mask → SEG / NIfTI → read back by others → same patient position.

For every orientation (axial head-first and feet-first, coronal, sagittal,
double oblique) a sphere is written at a known LPS centre, with files shuffled
and Instance Numbers running against the position. The centre must come back
within 0.5 voxel from: the Volume's affine; the SEG read with pydicom from its
own functional groups; the SEG read by highdicom; the SEG converted by dcmqi
``segimage2itkimage`` to NIfTI; the NIfTI written by :mod:`imaging.nifti`
read with nibabel alone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest

from imaging.nifti import load_nifti, lps_ras_flip, save_nifti
from imaging.provenance import save_dataset
from imaging.results import ResultContext, Segment
from imaging.seg import write_seg
from imaging.segread import read_seg
from imaging.volume import load_volume
from imaging_helpers import ALTERED, CASES, NODULE, error_in_voxels, seg_centroid_lps, write_phantom
from peers import dciodvfy_errors

SEGIMAGE2ITKIMAGE = str(Path(sys.executable).parent / "segimage2itkimage")


def _centroid_lps(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ idx + affine[:3, 3]


@pytest.mark.parametrize("case", sorted(CASES))
def test_sphere_lands_on_the_same_patient_position(case: str, tmp_path: Path, context: ResultContext) -> None:
    orientation, position = CASES[case]
    phantom = write_phantom(tmp_path / "series", orientation, position)
    volume = load_volume(phantom.paths)

    assert volume.shape == phantom.shape
    assert np.allclose(volume.spacing_mm, (phantom.slice_step_mm, *phantom.pixel_spacing), atol=1e-4)
    mask = volume.voxels > 500
    assert error_in_voxels(volume.affine, _centroid_lps(volume.affine, mask), phantom.centre_lps) < 0.5
    centre_index = np.round(volume.lps_to_index(phantom.centre_lps[np.newaxis])[0]).astype(int)
    assert volume.voxels[tuple(centre_index)] == pytest.approx(1000.0)

    seg = write_seg(volume, [Segment("Sphere", ALTERED, NODULE, mask, "sphere-1")], context)
    seg_path = save_dataset(seg, tmp_path / "out")
    assert dciodvfy_errors(seg_path) == []
    assert error_in_voxels(volume.affine, seg_centroid_lps(seg_path), phantom.centre_lps) < 0.5
    assert np.array_equal(read_seg(seg_path, volume)[0].mask, mask)  # our reader: exactly the same voxels

    hd_volume = hd.seg.segread(seg_path).get_volume(combine_segments=True)
    hd_mask = np.asarray(hd_volume.array) > 0
    assert error_in_voxels(volume.affine, _centroid_lps(hd_volume.affine, hd_mask), phantom.centre_lps) < 0.5

    out = tmp_path / "dcmqi"
    out.mkdir()
    run = subprocess.run([SEGIMAGE2ITKIMAGE, "--inputDICOM", str(seg_path), "--outputDirectory", str(out),
                          "-t", "nifti"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    itk = nib.load(str(next(out.glob("*.nii*"))))
    itk_mask = np.asanyarray(itk.dataobj) > 0
    ras = nib.affines.apply_affine(itk.affine, np.argwhere(itk_mask).mean(axis=0))
    dcmqi_lps = np.array([-ras[0], -ras[1], ras[2]])
    assert error_in_voxels(volume.affine, dcmqi_lps, phantom.centre_lps) < 0.5


@pytest.mark.parametrize("case", sorted(CASES))
def test_nifti_round_trip_keeps_patient_position(case: str, tmp_path: Path) -> None:
    orientation, position = CASES[case]
    phantom = write_phantom(tmp_path / "series", orientation, position)
    volume = load_volume(phantom.paths)
    path = save_nifti(volume, tmp_path / "ct.nii.gz")

    image = nib.load(str(path))  # nibabel alone: RAS+, (i, j, k) = (column, row, slice)
    data = np.asanyarray(image.dataobj)
    assert data.shape == (phantom.shape[2], phantom.shape[1], phantom.shape[0])
    ras = nib.affines.apply_affine(image.affine, np.argwhere(data > 500).mean(axis=0))
    assert error_in_voxels(volume.affine, np.array([-ras[0], -ras[1], ras[2]]), phantom.centre_lps) < 0.5
    assert nib.aff2axcodes(image.affine) == nib.aff2axcodes(lps_ras_flip(volume.affine)[:, [2, 1, 0, 3]])

    back = load_nifti(path)
    assert np.allclose(back.affine, volume.affine, atol=1e-4)
    assert np.array_equal(back.voxels, volume.voxels)


def test_lps_ras_flip_is_its_own_inverse_and_negates_x_and_y() -> None:
    affine = np.arange(16, dtype=float).reshape(4, 4)
    affine[3] = (0, 0, 0, 1)
    flipped = lps_ras_flip(affine)
    assert np.array_equal(flipped[0], -affine[0])
    assert np.array_equal(flipped[1], -affine[1])
    assert np.array_equal(flipped[2:], affine[2:])
    assert np.array_equal(lps_ras_flip(flipped), affine)
