"""Phantom exams written as DICOM Digital Mammography X-Ray images (For Presentation or For Processing).

Images are stored the way a modality stores them for display: a right breast with the chest wall
on the right (Patient Orientation "P\\L" on CC, "P\\FL" on MLO), a left breast with it on the left;
:func:`models.mammography.orientation.view_orientation` brings them back to canonical orientation.
Stored value = phantom intensity × :data:`STORED_SCALE` (12 bits), with the VOI window
:data:`training.mammography.phantom.PHANTOM_WINDOW` scaled the same way.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from models.mammography.orientation import stored_patient_orientation, view_orientation
from training.mammography.phantom import PHANTOM_WINDOW, PhantomExam

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
STORED_SCALE = 1500.0
#: View Code Sequence items (SNOMED CT, CID 4014).
VIEW_CODE = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}


@dataclass(frozen=True)
class MgStudyOptions:
    """How a phantom exam is written. ``magnification``: Estimated Radiographic Magnification Factor;
    Imager Pixel Spacing = phantom spacing × magnification (the spacing in the breast plane is the phantom's)."""

    study_uid: str = ""
    for_processing: bool = False
    magnification: float = 1.0
    patient_id: str = "MGPHANTOM1"
    patient_name: str = "PHANTOM^MAMMO"
    accession: str = "MG0001"
    include_patient_orientation: bool = True


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _base(sop_class: str, options: MgStudyOptions, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = options.patient_name
    ds.PatientID = options.patient_id
    ds.PatientBirthDate = "19650101"
    ds.PatientSex = "F"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = dt.date.today().strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.AccessionNumber = options.accession
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Screening mammography (phantom)"
    ds.Modality = "MG"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "MG phantom 4 views"
    ds.Manufacturer = "AIWS phantom"
    ds.ManufacturerModelName = "training.mammography"
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.BodyPartExamined = "BREAST"
    ds.PresentationIntentType = "FOR PROCESSING" if options.for_processing else "FOR PRESENTATION"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.DetectorType = "DIRECT"
    ds.OrganExposed = "BREAST"
    ds.KVP = 29
    ds.BreastImplantPresent = "NO"
    ds.AnatomicRegionSequence = Sequence([_code("76752008", "SCT", "Breast")])
    ds.AcquisitionContextSequence = Sequence()
    return ds


def _pixels(ds: Dataset, stored: np.ndarray, for_processing: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    if not for_processing:
        ds.WindowCenter = f"{PHANTOM_WINDOW[0] * STORED_SCALE:.1f}"
        ds.WindowWidth = f"{PHANTOM_WINDOW[1] * STORED_SCALE:.1f}"
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.astype(np.uint16).tobytes()


def write_exam(exam: PhantomExam, out_dir: Path, options: MgStudyOptions = MgStudyOptions()) -> list[Path]:
    """Write the four views of *exam* as one MG series in *out_dir*; returns the file paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sop_class = MG_FOR_PROCESSING if options.for_processing else MG_FOR_PRESENTATION
    study_uid = options.study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for number, ((laterality, view), pv) in enumerate(sorted(exam.views.items()), start=1):
        ds = _base(sop_class, options, study_uid, series_uid)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
        code = _code(*VIEW_CODE[view][:1], "SCT", VIEW_CODE[view][1])
        code.ViewModifierCodeSequence = Sequence()
        ds.ViewCodeSequence = Sequence([code])
        po = stored_patient_orientation(laterality, view)
        ds.PatientOrientation = list(po) if options.include_patient_orientation else ""
        stored = np.clip(np.round(view_orientation(laterality, view, po).to_stored(pv.image) * STORED_SCALE), 0, 4095)
        ds.ImagerPixelSpacing = [f"{pv.spacing_mm * options.magnification:.6g}"] * 2
        ds.EstimatedRadiographicMagnificationFactor = f"{options.magnification:.4g}"
        ds.DistanceSourceToDetector = 650
        ds.DistanceSourceToPatient = f"{650 / options.magnification:.1f}"
        ds.BodyPartThickness = 50
        ds.CompressionForce = 100
        _pixels(ds, stored, options.for_processing)
        path = out_dir / f"mg_{laterality}{view}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
