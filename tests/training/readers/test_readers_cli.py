"""``aiws dataset check`` and ``--format`` on ``aiws train`` / ``aiws evaluate``."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from aiws.cli import main
from aiws.cli_train import FORMAT_NAMES
from training.readers import FORMATS


def _msd(root: Path, good: int, empty: int) -> Path:
    names = [f"lung_{n:03d}" for n in range(good + empty)]
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([-0.8, -0.8, 2.0, 1.0])
    for n, name in enumerate(names):
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), affine), str(root / "imagesTr" / f"{name}.nii.gz"))
        label = np.zeros((8, 8, 4), np.uint8)
        if n < good:
            label[2:4, 2:5, 1] = 1
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / f"{name}.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({
        "labels": {"0": "background", "1": "nodule"}, "numTraining": len(names),
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names]}),
        encoding="utf-8")
    return root


def test_format_names_are_the_readers(tmp_path: Path) -> None:
    assert FORMAT_NAMES == tuple(FORMATS)


def test_dataset_check_lists_cases_and_skipped_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _msd(tmp_path / "Task06", good=2, empty=1)
    assert main(["dataset", "check", "--data", str(root), "--format", "msd"]) == 0
    out = capsys.readouterr().out
    assert "case lung_000: image 4x8x8; spacing 2x0.8x0.8 mm; labels nodule 6 vx" in out
    assert "SKIPPED lung_002: label map is empty (no labelled voxel)" in out
    assert "Task06 (msd): 2 usable case(s), 1 skipped" in out


def test_dataset_check_without_usable_case_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _msd(tmp_path / "Task06", good=0, empty=2)
    assert main(["dataset", "check", "--data", str(root), "--format", "msd"]) == 1
    assert "no usable msd case" in capsys.readouterr().err


def test_dataset_check_of_a_folder_in_another_layout_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _msd(tmp_path / "Task06", good=1, empty=0)
    assert main(["dataset", "check", "--data", str(root), "--format", "acdc"]) == 1
    assert "no patientNNN/Info.cfg found" in capsys.readouterr().err


def test_train_refuses_a_format_its_task_cannot_learn_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "cardiac_mri", "--data", str(tmp_path), "--format", "msd"]) == 1
    assert "the cardiac_mri task learns from dicom-seg, acdc, mnms" in capsys.readouterr().err
    assert main(["train", "lung_nodules", "--data", str(tmp_path), "--format", "acdc"]) == 1
    assert "the lung_nodules task learns from dicom-seg, msd, luna16, lidc" in capsys.readouterr().err


def test_train_with_a_format_refuses_an_unreadable_config_before_a_run_folder(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = _msd(tmp_path / "Task06", good=1, empty=1)
    assert main(["train", "lung_nodules", "--data", str(root), "--format", "msd", "--config",
                 str(tmp_path / "run.toml"), "--runs-dir", str(tmp_path / "runs")]) == 1
    assert "run.toml: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
