"""NIfTI readers (msd, acdc, mnms) on small files written in exactly the published layouts."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from training.readers import DatasetError, read_dataset

# A RAS affine with 1.5 mm columns, 1.25 mm rows and 8 mm slices, shifted.
RAS = np.array([[-1.5, 0, 0, 90.0], [0, -1.25, 0, 100.0], [0, 0, 8.0, -40.0], [0, 0, 0, 1]])


def _save(path: Path, data: np.ndarray, affine: np.ndarray = RAS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _label(shape: tuple[int, ...], values: tuple[int, ...] = (1, 2, 3)) -> np.ndarray:
    label = np.zeros(shape, dtype=np.uint8)
    for n, v in enumerate(values):
        label[2 + 2 * n:4 + 2 * n, 3:7, 1] = v
    return label


# ------------------------------------------------------------------------------------------------ msd
def _msd(root: Path, names: list[str], labels: dict[str, str] | None = None) -> None:
    doc = {"name": "Lung", "modality": {"0": "CT"}, "labels": labels or {"0": "background", "1": "cancer"},
           "numTraining": len(names), "numTest": 0, "test": [],
           "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")


def test_msd_reads_cases_and_skips_bad_ones_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "Task06_Lung"
    _msd(root, ["lung_001", "lung_002", "lung_003", "lung_004", "lung_005"])
    image = np.arange(12 * 10 * 4, dtype=np.int16).reshape(12, 10, 4)
    for name in ("lung_001", "lung_002", "lung_003", "lung_004"):
        _save(root / "imagesTr" / f"{name}.nii.gz", image)
    _save(root / "labelsTr" / "lung_001.nii.gz", _label(image.shape, (1,)))
    _save(root / "labelsTr" / "lung_002.nii.gz", np.zeros(image.shape, np.uint8))            # empty label
    _save(root / "labelsTr" / "lung_003.nii.gz", _label((12, 10, 5), (1,)))                  # another grid
    _save(root / "labelsTr" / "lung_004.nii.gz", _label(image.shape, (1, 2)))                # unnamed value 2
    result = read_dataset(root, "msd")
    assert [c.case_id for c in result.cases] == ["lung_001"]
    case = result.cases[0]
    # NIfTI (i, j, k) -> Volume (k, r, c); RAS -> LPS: x and y negated.
    assert case.image.shape == (4, 10, 12)
    assert case.image.voxels[1, 2, 3] == image[3, 2, 1]
    np.testing.assert_allclose(case.image.origin_mm, [-90.0, -100.0, -40.0])
    np.testing.assert_allclose(case.image.spacing_mm, [8.0, 1.25, 1.5])
    assert dict(case.label.names) == {1: "cancer"} and int(case.label.voxels.sum()) == 8
    assert [s.name for s in case.sources] == ["imagesTr/lung_001.nii.gz", "labelsTr/lung_001.nii.gz"]
    assert all(len(s.sha256) == 64 for s in case.sources)
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "empty" in reasons["lung_002"]
    assert "does not match the image grid" in reasons["lung_003"]
    assert "[2] have no name" in reasons["lung_004"]
    assert "missing" in reasons["lung_005"]


def test_msd_nnunet_v2_labels_and_no_usable_case_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "Dataset001"
    _msd(root, ["a_001"], labels={"background": 0, "tumour": 1})
    with pytest.raises(DatasetError, match="no usable msd case.*a_001: .*missing"):
        read_dataset(root, "msd")


def test_msd_without_dataset_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset.json"):
        read_dataset(tmp_path, "msd")


# ------------------------------------------------------------------------------------------------ acdc
def _acdc_patient(root: Path, patient: str, ed: int, es: int, frames: int = 10) -> None:
    folder = root / "training" / patient
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {frames}\n"
                                     "Weight: 95.0\n", encoding="utf-8")
    shape = (12, 10, 6)
    rng = np.random.default_rng(ed)
    _save(folder / f"{patient}_4d.nii.gz", rng.integers(0, 500, shape + (frames,)).astype(np.int16))
    for frame in (ed, es):
        _save(folder / f"{patient}_frame{frame:02d}.nii.gz", rng.integers(0, 500, shape).astype(np.int16))
        _save(folder / f"{patient}_frame{frame:02d}_gt.nii.gz", _label(shape))


def test_acdc_reads_ed_and_es_with_info_cfg(tmp_path: Path) -> None:
    _acdc_patient(tmp_path, "patient001", ed=1, es=12, frames=30)
    _acdc_patient(tmp_path, "patient002", ed=1, es=9)
    (tmp_path / "training" / "patient002" / "patient002_frame09_gt.nii.gz").unlink()
    result = read_dataset(tmp_path, "acdc")
    assert [c.case_id for c in result.cases] == ["patient001_ED", "patient001_ES", "patient002_ED"]
    es = result.cases[1]
    assert es.image_labels.phase == "ES"
    assert dict(es.image_labels.extra)["frame"] == "12"
    assert dict(es.image_labels.extra)["height_cm"] == "184.0" and dict(es.image_labels.extra)["weight_kg"] == "95.0"
    assert dict(es.label.names) == {1: "right ventricle", 2: "myocardium", 3: "left ventricle"}
    assert "Info.cfg" in [Path(s.name).name for s in es.sources]
    assert [(s.case_id, "patient002_frame09_gt.nii.gz: missing" in s.reason) for s in result.skipped] == \
        [("patient002_ES", True)]


def test_acdc_info_cfg_without_es_is_skipped(tmp_path: Path) -> None:
    _acdc_patient(tmp_path, "patient001", ed=1, es=5)
    _acdc_patient(tmp_path, "patient003", ed=1, es=5)
    (tmp_path / "training" / "patient003" / "Info.cfg").write_text("ED: 1\nGroup: NOR\n", encoding="utf-8")
    result = read_dataset(tmp_path, "acdc")
    assert [(s.case_id, s.reason) for s in result.skipped] == \
        [("patient003", "Info.cfg: ES frame number missing or not a whole number")]


# ------------------------------------------------------------------------------------------------ mnms
def test_mnms_reads_ed_es_frames_of_4d_files_with_published_labels(tmp_path: Path) -> None:
    root = tmp_path / "OpenDataset"
    (root).mkdir()
    (root / "201014_M&Ms_Dataset_Information_-_opendataset.csv").write_text(
        "External code,VendorName,Vendor,Centre,ED,ES\nA0S9V9,Siemens,A,1,0,3\nB1C2D3,Philips,B,2,1,4\n"
        "Z9Z9Z9,GE,C,3,0,3\n", encoding="utf-8")
    shape = (12, 10, 5, 6)
    for code in ("A0S9V9", "B1C2D3"):
        folder = root / "Training" / "Labeled" / code
        image = np.zeros(shape, dtype=np.int16)
        image[..., :] = np.arange(shape[3], dtype=np.int16) * 10      # frame t holds the value 10 t
        _save(folder / f"{code}_sa.nii.gz", image)
        gt = np.zeros(shape, dtype=np.uint8)
        gt[..., 0] = _label(shape[:3])                                 # labels on frames 0 and 3 only
        gt[..., 3] = _label(shape[:3])
        _save(folder / f"{code}_sa_gt.nii.gz", gt)
    result = read_dataset(root, "mnms")
    ids = [c.case_id for c in result.cases]
    assert ids == ["A0S9V9_ED", "A0S9V9_ES"]
    ed, es = result.cases
    assert float(ed.image.voxels.max()) == 0.0 and float(es.image.voxels.max()) == 30.0   # frames 0 and 3
    assert dict(ed.label.names) == {1: "left ventricle", 2: "myocardium", 3: "right ventricle"}
    assert dict(ed.image_labels.extra)["vendorname"] == "Siemens"
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "empty" in reasons["B1C2D3_ED"]             # ED is frame 1, which has no label
    assert "empty" in reasons["B1C2D3_ES"]
    assert reasons["Z9Z9Z9"] == "no Z9Z9Z9_sa.nii.gz in the dataset folder"
