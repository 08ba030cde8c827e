"""Write a cine phantom as one DICOM MR series (slice locations x phases), with pydicom.

Each image carries Trigger Time, Cardiac Number of Images, an oblique short-axis orientation,
Image Position stepping by (thickness + gap) along the slice normal from base to apex, Heart Rate,
and the patient's sex, height and weight. UIDs derive from the seed.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from training.cardiac_mri.phantom import CineParams

#: An oblique short-axis plane: row and column directions (LPS).
ROW_DIR = np.array([0.70, 0.55, -0.45])
COL_DIR_HINT = np.array([0.40, -0.75, -0.52])


def orientation() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, slice normal), orthonormal."""
    row = ROW_DIR / np.linalg.norm(ROW_DIR)
    col = COL_DIR_HINT - np.dot(COL_DIR_HINT, row) * row
    col /= np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _patient(ds: Dataset, p: CineParams, study_uid: str) -> None:
    today = dt.date.today().strftime("%Y%m%d")
    ds.StudyInstanceUID = study_uid
    ds.PatientName, ds.PatientID, ds.PatientSex = "PHANTOM^CINE", f"PHANTOM-CMR-{p.seed}", p.sex
    ds.PatientBirthDate = "19700101"
    ds.PatientSize, ds.PatientWeight = f"{p.height_cm / 100:.2f}", f"{p.weight_kg:.1f}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = f"CMR{p.seed:05d}", "1", ""
    ds.StudyDescription = "MR CARDIAC FUNCTION"


def _mr_attributes(ds: Dataset, p: CineParams) -> None:
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SS", "CG"
    ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "2D", 3.2, 1.4, 1
    ds.MagneticFieldStrength, ds.FlipAngle, ds.ImagingFrequency = 1.5, 60, 63.87
    ds.SliceThickness = f"{p.thickness_mm:.2f}"
    ds.SpacingBetweenSlices = f"{p.thickness_mm + p.gap_mm:.2f}"
    ds.HeartRate = int(round(p.heart_rate_bpm))
    ds.NominalInterval = int(round(60000 / p.heart_rate_bpm))
    ds.CardiacNumberOfImages = p.n_phases
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.BodyPartExamined = "HEART"
    ds.PatientPosition = "HFS"


def write_series(p: CineParams, images: np.ndarray, out_dir: Path, study_uid: str = "") -> list[Path]:
    """Write (phases, slices, rows, columns) images as MR Image Storage (uint16); return the paths."""
    study_uid = study_uid or _uid("cmr-study", p.seed)
    series_uid, frame_uid = _uid("cmr-series", p.seed, study_uid), _uid("cmr-frame", p.seed, study_uid)
    row, col, normal = orientation()
    spacing = p.thickness_mm + p.gap_mm
    centre = np.array([20.0, 10.0, 30.0])
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.round(images), 0, 65535).astype(np.uint16)
    times = p.trigger_times_ms
    paths = []
    for k in range(p.n_slices):
        slice_centre = centre + (k - (p.n_slices - 1) / 2) * spacing * normal
        origin = slice_centre - (p.cols / 2) * p.pixel_spacing_mm * row - (p.rows / 2) * p.pixel_spacing_mm * col
        for ph in range(p.n_phases):
            sop_uid = _uid("cmr-sop", p.seed, study_uid, k, ph)
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = MRImageStorage, sop_uid
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop_uid
            _patient(ds, p, study_uid)
            ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = series_uid, frame_uid, ""
            ds.Modality, ds.Manufacturer, ds.SeriesNumber = "MR", "AIWS phantom", 5
            ds.SeriesDescription = "SA cine bSSFP"
            ds.InstanceNumber = k * p.n_phases + ph + 1
            _mr_attributes(ds, p)
            ds.TriggerTime = f"{times[ph]:.1f}"
            ds.ImagePositionPatient = [f"{v:.4f}" for v in origin]
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
            ds.SliceLocation = f"{float(np.dot(slice_centre, normal)):.4f}"
            ds.PixelSpacing = [f"{p.pixel_spacing_mm:.6f}"] * 2
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows, ds.Columns = p.rows, p.cols
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = stored[ph, k].tobytes()
            path = out_dir / f"mr_{k:02d}_{ph:02d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths
