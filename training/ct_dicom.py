"""Write a synthetic CT volume (HU, index -> LPS affine) as a DICOM CT series, as a scanner would send it.

Used to push phantoms through the real service (tests, benchmarks, demos). UIDs derive from the
given seed text, so the same phantom always gives the same study. No real person's data.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


@dataclass(frozen=True)
class CtSeriesInfo:
    """Patient, study and series attributes of a synthetic series."""

    seed_text: str
    study_uid: str = ""
    study_date: str = ""  # YYYYMMDD; default today
    patient_id: str = "PHANTOM-CHEST"
    patient_name: str = "PHANTOM^CHEST"
    sex: str = "O"
    birth_date: str = "19550101"
    accession: str = "CHEST0001"
    study_description: str = "CT CHEST"
    series_description: str = "CHEST 1.0 LUNG"
    body_part: str = "CHEST"
    window: tuple[float, float] = (-600.0, 1500.0)  # default display window (centre, width) in HU


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def write_ct_series(hu: np.ndarray, affine: np.ndarray, out_dir: Path, info: CtSeriesInfo) -> list[Path]:
    """One file per slice of ``hu[k, r, c]``; *affine* maps (k, r, c, 1) to LPS mm (any orientation).

    Stored values are HU + 1024 (int16, rescale intercept -1024). Returns the paths in slice order.
    """
    study_uid = info.study_uid or _uid("study", info.seed_text)
    series_uid = _uid("series", info.seed_text, study_uid)
    frame_uid = _uid("frame", info.seed_text, study_uid)
    date = info.study_date or dt.date.today().strftime("%Y%m%d")
    col_dir = affine[:3, 1] / np.linalg.norm(affine[:3, 1])  # along rows index -> column direction cosine
    row_dir = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    pixel = (float(np.linalg.norm(affine[:3, 1])), float(np.linalg.norm(affine[:3, 2])))
    thickness = float(np.linalg.norm(affine[:3, 0]))
    stored = np.clip(np.rint(hu + 1024.0), -32768, 32767).astype(np.int16)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(hu.shape[0]):
        sop_uid = _uid("sop", info.seed_text, study_uid, k)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PositionReferenceIndicator = ""
        ds.PatientName, ds.PatientID, ds.PatientSex = info.patient_name, info.patient_id, info.sex
        ds.PatientBirthDate = info.birth_date
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
        ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = info.accession, "1", ""
        ds.StudyDescription, ds.SeriesDescription = info.study_description, info.series_description
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "CT", "AIWS phantom", 3, k + 1
        ds.AcquisitionNumber = 1
        ds.BodyPartExamined, ds.PatientPosition = info.body_part, "FFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP, ds.SliceThickness = 120, round(thickness, 4)
        ds.ImagePositionPatient = [round(float(v), 4) for v in affine[:3, :3] @ np.array([k, 0, 0]) + affine[:3, 3]]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [round(pixel[0], 6), round(pixel[1], 6)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = info.window
        ds.SliceLocation = ds.ImagePositionPatient[2]
        ds.PixelData = stored[k].tobytes()
        path = out_dir / f"ct_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
