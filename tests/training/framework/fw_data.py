"""Tiny learnable datasets in the exact published layouts, for the training-framework tests.

The reader tests (tests/training/readers/) write noise in each layout; here the same layouts carry images a
network can learn from in a few iterations: a bright LV disc in a darker myocardial ring beside an RV crescent
(cardiac), a dense ball in lung-like air (lung).
"""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
from pydicom import dcmread
from pydicom.sr.codedict import codes

from factories import make_ct_series

# NIfTI affine (RAS) as the readers' tests use: 1.5 x 1.25 mm in-plane, 8 mm slices.
RAS = np.array([[-1.5, 0, 0, 90.0], [0, -1.25, 0, 100.0], [0, 0, 8.0, -40.0], [0, 0, 0, 1]])


def _save(path: Path, data: np.ndarray, affine: np.ndarray = RAS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def heart(n_slices: int, size: int, lv_radius: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels) of shape (size, size, n_slices) (NIfTI x, y, z): 1 RV, 2 myocardium, 3 LV (ACDC values)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cy, cx = size / 2 + rng.normal(0, 1.5), size / 2 + rng.normal(0, 1.5)
    r = np.hypot(yy - cy, xx - cx)
    image = np.zeros((size, size, n_slices), dtype=np.float32)
    labels = np.zeros((size, size, n_slices), dtype=np.uint8)
    for z in range(n_slices):
        lv = r < lv_radius
        myo = (r >= lv_radius) & (r < lv_radius + 3)
        rv = (np.hypot(yy - cy, xx - (cx - lv_radius - 6)) < lv_radius + 2) & ~lv & ~myo & (xx < cx - lv_radius)
        lab = np.zeros((size, size), dtype=np.uint8)
        lab[rv], lab[myo], lab[lv] = 1, 2, 3
        img = 80 + 300 * lv + 120 * myo + 260 * rv + rng.normal(0, 15, (size, size))
        image[..., z], labels[..., z] = img, lab
    return image.astype(np.int16), labels


def acdc(root: Path, patients: int, size: int = 32, seed: int = 0) -> Path:
    """ACDC layout: ``training/patientNNN/`` with Info.cfg, the 4D cine and the ED/ES frames with ``_gt`` labels."""
    rng = np.random.default_rng(seed)
    for p in range(1, patients + 1):
        folder = root / "training" / f"patient{p:03d}"
        folder.mkdir(parents=True)
        ed, es = 1, 5
        (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 175.0\nNbFrame: 8\nWeight: 70.0\n",
                                         encoding="utf-8")
        frames = {}
        for frame, radius in ((ed, 7.0), (es, 4.5)):
            frames[frame] = heart(3, size, radius + rng.normal(0, 0.3), rng)
            _save(folder / f"patient{p:03d}_frame{frame:02d}.nii.gz", frames[frame][0])
            _save(folder / f"patient{p:03d}_frame{frame:02d}_gt.nii.gz", frames[frame][1])
        _save(folder / f"patient{p:03d}_4d.nii.gz", np.stack([frames[ed][0]] * 8, axis=-1))
    return root


def _seg(paths: list[Path], label: np.ndarray, names: list[str]) -> hd.seg.Segmentation:
    """A binary SEG of *label* (values 1..len(names)) on the series *paths* (as in the readers' tests)."""
    sources = [dcmread(p) for p in paths]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names, start=1)]
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=label.astype(np.uint8), segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="0",
        device_serial_number="0")


def cardiac_dicom_seg(root: Path, studies: int, size: int = 32, seed: int = 0) -> Path:
    """``dicom-seg`` layout: per study an image series and a SEG with segments LV blood pool, LV myocardium,
    RV blood pool (the names 3D Slicer users type)."""
    rng = np.random.default_rng(seed)
    for s in range(studies):
        image, labels = heart(3, size, 6.0 + rng.normal(0, 0.5), rng)
        voxels = np.transpose(image, (2, 1, 0)).astype(float)  # (slice, row, col)
        lab = np.transpose(labels, (2, 1, 0))
        ours = np.select([lab == 3, lab == 2, lab == 1], [1, 2, 3], 0).astype(np.uint8)
        paths = make_ct_series(root / f"study{s}" / "img", n_slices=3, rows=size, cols=size, voxels=voxels - 1024,
                               spacing=(1.5, 1.5, 8.0), seed=s)
        _seg(paths, ours, ["LV blood pool", "LV myocardium", "RV blood pool"]).save_as(root / f"study{s}" / "seg.dcm")
    return root


def ball_ct(shape: tuple[int, int, int], centre: tuple[float, float, float], radius_vx: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(HU (z, y, x), label) of a dense ball in lung-like air."""
    zz, yy, xx = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]].astype(float)
    ball = np.hypot(np.hypot(zz - centre[0], yy - centre[1]), xx - centre[2]) < radius_vx
    hu = -850 + rng.normal(0, 30, shape) + 850 * ball
    return hu, ball.astype(np.uint8)


def lung_msd(root: Path, cases: int, size: int = 32, seed: int = 0, empty: int = 0) -> Path:
    """MSD Task06 layout: dataset.json, imagesTr/, labelsTr/ (1 mm voxels); *empty* cases with an empty label
    (the reader skips them)."""
    rng = np.random.default_rng(seed)
    names = [f"lung_{i:03d}" for i in range(cases + empty)]
    doc = {"name": "Lung", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "cancer"},
           "numTraining": len(names), "numTest": 0, "test": [],
           "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc), encoding="utf-8")
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for k, name in enumerate(names):
        centre = tuple(float(v) for v in rng.uniform(10, size - 10, 3))
        hu, label = ball_ct((size, size, size), centre, rng.uniform(3, 5), rng)  # type: ignore[arg-type]
        if k >= cases:
            label[:] = 0
        _save(root / "imagesTr" / f"{name}.nii.gz", np.transpose(hu, (2, 1, 0)).astype(np.int16), affine)
        _save(root / "labelsTr" / f"{name}.nii.gz", np.transpose(label, (2, 1, 0)), affine)
    return root


def lung_dicom_seg(root: Path, studies: int, size: int = 32, seed: int = 0) -> Path:
    """``dicom-seg`` layout: per study a CT series (1 mm) and a SEG with one segment "Nodule"."""
    rng = np.random.default_rng(seed)
    for s in range(studies):
        centre = tuple(float(v) for v in rng.uniform(10, size - 10, 3))
        hu, label = ball_ct((size, size, size), centre, rng.uniform(3, 5), rng)  # type: ignore[arg-type]
        paths = make_ct_series(root / f"study{s}" / "ct", n_slices=size, rows=size, cols=size, voxels=hu,
                               spacing=(1.0, 1.0, 1.0), seed=s)
        _seg(paths, label, ["Nodule"]).save_as(root / f"study{s}" / "seg.dcm")
    return root


def _mhd_writer():  # type: ignore[no-untyped-def]
    """``write_mhd`` of the readers' MetaImage tests (header lines exactly as LUNA16 files have them)."""
    path = Path(__file__).resolve().parents[1] / "readers" / "test_readers_mhd.py"
    spec = importlib.util.spec_from_file_location("_readers_mhd_layout", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.write_mhd


def lung_luna16(root: Path, scans: int, size: int = 32, seed: int = 0) -> Path:
    """LUNA16 layout: ``subsetN/<seriesuid>.mhd``/``.raw`` (1 mm voxels) and ``annotations.csv`` (world
    coordinates, diameter): one ball per scan, its centre and diameter as the only truth."""
    write_mhd = _mhd_writer()
    rng = np.random.default_rng(seed)
    offset = (-100.0, -120.0, -50.0)
    rows = []
    for k in range(scans):
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{100 + k}"
        centre_zyx = rng.uniform(10, size - 10, 3)
        radius = float(rng.uniform(3, 5))
        hu, _ = ball_ct((size, size, size), tuple(centre_zyx), radius, rng)  # type: ignore[arg-type]
        write_mhd(root / f"subset{k % 2}" / f"{uid}.mhd", hu, spacing=(1.0, 1.0, 1.0), offset=offset)
        z, y, x = centre_zyx
        rows.append((uid, offset[0] + x, offset[1] + y, offset[2] + z, 2 * radius))
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        writer.writerows(rows)
    return root
