"""Factories that write real DICOM files with pydicom, for tests and benchmarks."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

#: Image Orientation (Patient) of common acquisitions (row direction, column direction) in LPS.
ORIENTATIONS: dict[str, tuple[float, ...]] = {
    "axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
}


def base_dataset(sop_class: str, modality: str, study_uid: str, series_uid: str, sop_uid: str) -> Dataset:
    """Patient, study, series and SOP common attributes (synthetic patient)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "PHANTOM^TEST"
    ds.PatientID = "PHANTOM001"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyDate = dt.date.today().strftime("%Y%m%d")
    ds.StudyTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.Manufacturer = "AIWS test factory"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    return ds


def make_ct_series(
    out_dir: Path,
    n_slices: int = 8,
    rows: int = 64,
    cols: int = 64,
    *,
    spacing: tuple[float, float, float] = (0.7, 0.7, 2.5),
    orientation: Sequence[float] = ORIENTATIONS["axial"],
    origin: tuple[float, float, float] = (-100.0, -120.0, -50.0),
    study_uid: str | None = None,
    series_uid: str | None = None,
    description: str = "CHEST 2.5mm",
    voxels: np.ndarray | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    seed: int = 0,
) -> list[Path]:
    """Write a CT series; slice k sits at origin + k × spacing[2] along the slice normal.

    *voxels* (k, r, c) in HU, when given, sets the pixel values; otherwise noise.
    Returns the file paths in slice order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    row_dir = np.array(orientation[:3], dtype=float)
    col_dir = np.array(orientation[3:], dtype=float)
    normal = np.cross(row_dir, col_dir)
    if voxels is None:
        rng = np.random.default_rng(seed)
        voxels = rng.normal(0.0, 20.0, (n_slices, rows, cols)).astype(np.float32)
    paths = []
    for k in range(n_slices):
        sop_uid = generate_uid()
        ds = base_dataset(CTImageStorage, "CT", study_uid, series_uid, sop_uid)
        ds.SeriesDescription = description
        ds.BodyPartExamined = "CHEST"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = study_uid + ".1" if len(study_uid) < 62 else generate_uid()
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        pos = np.array(origin) + k * spacing[2] * normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing, column spacing
        ds.SliceThickness = spacing[2]
        ds.KVP = 120
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        stored = np.round((voxels[k] - intercept) / slope).astype(np.int16)
        ds.PixelData = stored.tobytes()
        path = out_dir / f"ct_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
