"""MSD/Decathlon layout: write phantoms, read them back in our convention, NIfTI orientation."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from models.lung_nodules.geometry import Grid
from training.lung_nodules.dataset import dataset_seeds, main, write_phantom_dataset
from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from training.msd import Case, DatasetError, case_names, read_case, to_nifti, write_case

TINY = PhantomConfig(max_matrix=120, z_extent_mm=40.0, nodules=(1, 2), diameter_mm=(6.0, 10.0))


def test_phantom_dataset_round_trip(tmp_path: Path) -> None:
    names = write_phantom_dataset(tmp_path, [7, 8], TINY)
    doc = json.loads((tmp_path / "dataset.json").read_text())
    assert doc["numTraining"] == 2 and doc["labels"] == {"0": "background", "1": "nodule"}
    assert case_names(tmp_path) == names and dataset_seeds(tmp_path) == [7, 8]
    case = read_case(tmp_path, names[0])
    phantom = generate_phantom(7, TINY)
    np.testing.assert_array_equal(case.image, phantom.hu)
    np.testing.assert_array_equal(case.label, (phantom.labels > 0).astype(np.uint8))
    np.testing.assert_allclose(case.grid.affine, phantom.affine, atol=1e-4)
    assert case.meta["nodules"] == phantom.nodules


def test_dataset_command_sets_the_nodule_sizes(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--seeds", "7,8", "--slab-mm", "40", "--max-matrix", "120",
                 "--nodules", "2:2", "--diameter-mm", "4:6"]) == 0
    doc = json.loads((tmp_path / "dataset.json").read_text())
    assert doc["phantom"]["config"]["diameter_mm"] == [4.0, 6.0]
    sizes = [n["mean_diameter_mm"] for name in case_names(tmp_path) for n in read_case(tmp_path, name).meta["nodules"]]
    assert sizes and all(4.0 <= d <= 6.0 for d in sizes)


def test_workers_write_the_same_dataset(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "one" / "data", tmp_path / "two" / "data"
    assert main(["--out", str(serial), "--seeds", "7:10", "--slab-mm", "40", "--max-matrix", "120"]) == 0
    assert main(["--out", str(parallel), "--seeds", "7:10", "--slab-mm", "40", "--max-matrix", "120",
                 "--workers", "2"]) == 0
    assert (serial / "dataset.json").read_text() == (parallel / "dataset.json").read_text()
    assert case_names(parallel) == ["lung_00007", "lung_00008", "lung_00009"]
    for name in case_names(serial):
        a, b = read_case(serial, name), read_case(parallel, name)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
        assert a.meta == b.meta


def test_dataset_command_refuses_no_workers(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--seeds", "7", "--workers", "0"])


def test_nifti_is_ras_and_x_fastest() -> None:
    grid = Grid.axial((3, 4, 5), (2.0, 0.5, 0.5), (-10.0, -20.0, 30.0))
    image = to_nifti(np.zeros((3, 4, 5), dtype=np.int16), grid)
    assert image.shape == (5, 4, 3)
    # voxel (i=1, j=0, k=0) of the NIfTI is one column to the patient's left: RAS x decreases by 0.5
    np.testing.assert_allclose(image.affine[:3, 0], [-0.5, 0.0, 0.0])
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")


def test_flipped_nifti_is_read_back_axial(tmp_path: Path) -> None:
    grid = Grid.axial((4, 3, 2), (2.0, 1.0, 1.0))
    data = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    image = to_nifti(data, grid)
    flipped = nib.Nifti1Image(np.asarray(image.dataobj)[:, :, ::-1].copy(), image.affine @ np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]], dtype=float))
    (tmp_path / "imagesTr").mkdir()
    nib.save(flipped, tmp_path / "imagesTr" / "c.nii.gz")
    case = read_case(tmp_path, "c")
    np.testing.assert_array_equal(case.image, data)
    np.testing.assert_allclose(case.grid.affine, grid.affine, atol=1e-5)


def test_label_on_another_grid_is_refused(tmp_path: Path) -> None:
    grid = Grid.axial((4, 3, 2), (2.0, 1.0, 1.0))
    write_case(tmp_path, Case("c", np.zeros((4, 3, 2), np.int16), grid))
    other = Grid.axial((4, 3, 2), (3.0, 1.0, 1.0))
    nib.save(to_nifti(np.zeros((4, 3, 2), np.uint8), other), tmp_path / "labelsTr" / "c.nii.gz")
    with pytest.raises(DatasetError, match="grid differs"):
        read_case(tmp_path, "c")


def test_missing_dataset_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset.json"):
        case_names(tmp_path)
