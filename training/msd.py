"""Medical Segmentation Decathlon (MSD) dataset layout: ``imagesTr/``, ``labelsTr/`` (NIfTI) and ``dataset.json``.

Reading gives arrays in this project's convention (``[i0, i1, i2]`` with an LPS affine, axial
order, see :mod:`models.lung_nodules.geometry`); writing does the reverse (NIfTI is RAS, x-fastest).
A case may carry a sidecar ``nodulesTr/<case>.json`` (ground-truth findings of a phantom).

DICOM series + DICOM SEG cases, and every other public layout: :mod:`training.readers`
(``read_dataset(dir, "dicom-seg")``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from models.lung_nodules.geometry import Grid, reorient_axial

LOGGER = logging.getLogger(__name__)

#: Our array index order (i0, i1, i2) <-> NIfTI order (x-fastest): reverse the axes.
_PERMUTE = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class DatasetError(Exception):
    """A dataset folder that does not follow the MSD layout, naming the file and the rule."""


@dataclass(frozen=True, eq=False)
class Case:
    """One image with its label on the same grid (label may be None for test images)."""

    name: str
    image: np.ndarray
    grid: Grid
    label: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def to_nifti(array: np.ndarray, grid: Grid) -> nib.Nifti1Image:
    """NIfTI image (RAS affine) of an array in our convention."""
    data = np.ascontiguousarray(np.transpose(array, (2, 1, 0)))
    affine = _LPS_RAS @ grid.affine @ _PERMUTE
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def from_nifti(image: nib.Nifti1Image) -> tuple[np.ndarray, Grid]:
    """Array and grid in our convention (axial order) from a NIfTI image."""
    data = np.asarray(image.dataobj)
    if data.ndim != 3:
        raise DatasetError(f"{image.get_filename()}: {data.ndim}D image, expected 3D")
    array = np.transpose(data, (2, 1, 0))
    affine = _LPS_RAS @ image.affine @ _PERMUTE
    return reorient_axial(array, Grid(tuple(array.shape), affine))  # type: ignore[arg-type]


def read_dataset_json(root: Path) -> dict[str, Any]:
    """``dataset.json`` of an MSD folder.

    Raises:
        DatasetError: missing, not JSON, or without a ``training`` list.
    """
    path = root / "dataset.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc.get("training"), list):
        raise DatasetError(f"{path}: no 'training' list (MSD layout)")
    return doc


def case_names(root: Path) -> list[str]:
    """Names of the training cases (file stem without ``.nii.gz``), in ``dataset.json`` order."""
    return [Path(item["image"]).name.removesuffix(".nii.gz") for item in read_dataset_json(root)["training"]]


def read_case(root: Path, name: str) -> Case:
    """Load ``imagesTr/<name>.nii.gz``, ``labelsTr/<name>.nii.gz`` and the optional ``nodulesTr/<name>.json``.

    Raises:
        DatasetError: a file is missing or image and label grids differ.
    """
    image_path, label_path = root / "imagesTr" / f"{name}.nii.gz", root / "labelsTr" / f"{name}.nii.gz"
    if not image_path.is_file():
        raise DatasetError(f"{image_path}: missing")
    image, grid = from_nifti(nib.load(image_path))
    label = None
    if label_path.is_file():
        label, lgrid = from_nifti(nib.load(label_path))
        if label.shape != image.shape or not np.allclose(lgrid.affine, grid.affine, atol=1e-3):
            raise DatasetError(f"{label_path}: grid differs from its image {image_path.name}")
    meta_path = root / "nodulesTr" / f"{name}.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return Case(name, image, grid, label, meta)


def write_case(root: Path, case: Case) -> None:
    """Write a case (image int16, label uint8, sidecar JSON) into the MSD folder; see :func:`write_dataset_json`."""
    for sub in ("imagesTr", "labelsTr", "nodulesTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    nib.save(to_nifti(case.image.astype(np.int16), case.grid), root / "imagesTr" / f"{case.name}.nii.gz")
    if case.label is not None:
        nib.save(to_nifti(case.label.astype(np.uint8), case.grid), root / "labelsTr" / f"{case.name}.nii.gz")
    if case.meta:
        (root / "nodulesTr" / f"{case.name}.json").write_text(json.dumps(case.meta, indent=2), encoding="utf-8")


def write_dataset_json(root: Path, names: list[str], description: str, labels: dict[str, str]) -> None:
    """``dataset.json`` listing *names* as training cases (CT modality)."""
    doc = {
        "name": root.name, "description": description, "modality": {"0": "CT"}, "labels": labels,
        "numTraining": len(names), "numTest": 0, "test": [],
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names],
    }
    (root / "dataset.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
