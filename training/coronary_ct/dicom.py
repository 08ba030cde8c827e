"""Write a calcium-score phantom as a DICOM CT series (what a scanner would send), with pydicom.

UIDs derive from the seed, so the same phantom always gives the same study.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from training.coronary_ct.phantom import CalciumPhantom


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes of a synthetic study (no real person)."""

    patient_id: str = "PHANTOM-CAC"
    patient_name: str = "PHANTOM^CALCIUM"
    sex: str = "M"
    birth_date: str = "19620101"
    accession: str = "CAC0001"
    study_uid: str = ""


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def write_series(phantom: CalciumPhantom, out_dir: Path, study: StudyInfo | None = None) -> list[Path]:
    """Write one file per slice (CT Image Storage, axial, HU = stored - 1024); return paths in slice order."""
    study = study or StudyInfo()
    study_uid = study.study_uid or _uid("cac-study", phantom.seed)
    series_uid = _uid("cac-series", phantom.seed, study_uid)
    frame_uid = _uid("cac-frame", phantom.seed, study_uid)
    out_dir.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().strftime("%Y%m%d")
    paths = []
    for k in range(phantom.hu.shape[0]):
        sop_uid = _uid("cac-sop", phantom.seed, study_uid, k)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientName, ds.PatientID, ds.PatientSex = study.patient_name, study.patient_id, study.sex
        ds.PatientBirthDate = study.birth_date
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = study.accession, "1", ""
        ds.StudyDescription = "CT CARDIAC CALCIUM SCORE"
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "CT", "AIWS phantom", 2, k + 1
        ds.SeriesDescription = f"CaSc {phantom.increment_mm:.1f}mm 120kV"
        ds.BodyPartExamined = "HEART"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "FFS"
        ds.PositionReferenceIndicator = ""
        x0, y0, z0 = phantom.origin_mm
        ds.ImagePositionPatient = [f"{x0:.4f}", f"{y0:.4f}", f"{z0 + k * phantom.increment_mm:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{z0 + k * phantom.increment_mm:.4f}"
        ds.PixelSpacing = [f"{phantom.pixel_spacing_mm:.6f}"] * 2
        ds.SliceThickness = f"{phantom.increment_mm:.2f}"
        ds.KVP, ds.AcquisitionNumber = 120, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = phantom.hu.shape[1], phantom.hu.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = np.round(phantom.hu[k] + 1024).astype(np.int16).tobytes()
        path = out_dir / f"ct_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
