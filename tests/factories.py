"""Factories that write real DICOM files with pydicom, for tests and benchmarks."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

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
    frame_of_reference_uid = study_uid + ".1" if len(study_uid) < 62 else generate_uid()  # one per series
    for k in range(n_slices):
        sop_uid = generate_uid()
        ds = base_dataset(CTImageStorage, "CT", study_uid, series_uid, sop_uid)
        ds.SeriesDescription = description
        ds.BodyPartExamined = "CHEST"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame_of_reference_uid
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


# ---------------------------------------------------------------------------------------------------------------
# Added for the imaging core (issue 3): free-form slices, cine MR, enhanced MR, mammography.
# ---------------------------------------------------------------------------------------------------------------
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
MG_FOR_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"


def _set_pixels(ds: Dataset, stored: np.ndarray, bits_stored: int = 16) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = ds.get("PhotometricInterpretation", "MONOCHROME2")
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def make_slices(
    out_dir: Path,
    voxels: np.ndarray,
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] | Sequence[Sequence[float]] = ORIENTATIONS["axial"],
    pixel_spacing: tuple[float, float] = (0.8, 0.9),
    thickness: float = 1.5,
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    bits_stored: int = 16,
    per_slice: Sequence[dict[str, object]] | None = None,
    instance_numbers: Sequence[int] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    description: str = "TEST SERIES",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Write one single-frame CT or MR file per slice of *voxels* (k, r, c; values after rescale), slice k at
    *positions[k]* (Image Position (Patient), mm). *orientation*: one Image Orientation (Patient) for all
    slices, or one per slice. *pixel_spacing*: (row, column) mm. *per_slice*: extra attributes per slice
    (keyword -> value). *transfer_syntax*: compress with pydicom's encoders (RLE Lossless, JPEG 2000
    Lossless). Returns the paths in slice order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MR_IMAGE_STORAGE
    orientations = [orientation] * len(voxels) if np.ndim(orientation) == 1 else list(orientation)  # type: ignore[list-item]
    paths = []
    for k in range(len(voxels)):
        ds = base_dataset(sop_class, modality, study_uid, series_uid, generate_uid())
        ds.SeriesDescription = description
        ds.ImageType = list(image_type)
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = instance_numbers[k] if instance_numbers is not None else k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientations[k]]  # type: ignore[union-attr]
        ds.PixelSpacing = [pixel_spacing[0], pixel_spacing[1]]
        ds.SliceThickness = thickness
        ds.PatientPosition = "HFS"
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if modality == "CT":
            ds.KVP, ds.RescaleType = 120, "HU"
        else:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SS", ""
            ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "2D", 3.0, 1.5, 1
        for keyword, value in (per_slice[k] if per_slice else {}).items():
            setattr(ds, keyword, value)
        stored = np.round((np.asarray(voxels[k], dtype=np.float64) - float(ds.RescaleIntercept))
                          / float(ds.RescaleSlope)).astype(np.int16)
        _set_pixels(ds, stored, bits_stored)
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
        path = out_dir / f"{modality.lower()}_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def cine_trigger_time_ms(location: int, phase: int, n_phases: int, rr_ms: float = 900.0) -> float:
    """Trigger Time of a cine frame: evenly spaced over the R-R interval, with a per-location offset
    (each location is acquired in other heartbeats, so Trigger Times differ slightly between locations)."""
    return round(phase * rr_ms / n_phases + 1.7 * location, 2)


def make_mr_cine_series(
    out_dir: Path,
    n_locations: int = 4,
    n_phases: int = 6,
    rows: int = 32,
    cols: int = 36,
    *,
    frames: np.ndarray | None = None,
    pixel_spacing: tuple[float, float] = (1.4, 1.5),
    thickness: float = 8.0,
    gap: float = 2.0,
    orientation: Sequence[float] = (0.8, 0.6, 0.0, 0.0, 0.0, -1.0),
    origin: tuple[float, float, float] = (-60.0, -40.0, 80.0),
    rr_ms: float = 900.0,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> list[Path]:
    """Single-frame MR cine: *n_locations* parallel slices (step = thickness + gap along the normal), each with
    *n_phases* frames ordered by Trigger Time (:func:`cine_trigger_time_ms`). *frames*: (location, phase, r, c)
    signal values (default: a disc whose radius changes with the phase). Files are numbered phase-major
    (as many scanners do), so neither file name nor Instance Number gives the location order."""
    if frames is None:
        rr, cc = np.mgrid[:rows, :cols]
        frames = np.zeros((n_locations, n_phases, rows, cols), dtype=np.float32)
        for loc in range(n_locations):
            for ph in range(n_phases):
                radius = 6.0 + 3.0 * np.cos(2 * np.pi * ph / n_phases) + 0.5 * loc
                frames[loc, ph] = np.where((rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 <= radius ** 2, 800.0, 100.0)
    row_dir, col_dir = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row_dir, col_dir)
    study_uid, series_uid = study_uid or generate_uid(), series_uid or generate_uid()
    frame_uid = generate_uid()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ph in range(n_phases):
        for loc in range(n_locations):
            ds = base_dataset(MR_IMAGE_STORAGE, "MR", study_uid, series_uid, generate_uid())
            ds.SeriesDescription, ds.ImageType = "CINE SAX", ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
            ds.InstanceNumber = ph * n_locations + loc + 1
            ds.ImagePositionPatient = [f"{v:.4f}" for v in np.array(origin) + loc * (thickness + gap) * normal]
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
            ds.PixelSpacing = list(pixel_spacing)
            ds.SliceThickness, ds.SpacingBetweenSlices = thickness, thickness + gap
            ds.TriggerTime = cine_trigger_time_ms(loc, ph, n_phases, rr_ms)
            ds.CardiacNumberOfImages, ds.HeartRate = n_phases, int(round(60000 / rr_ms))
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SS", ""
            ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "2D", 3.0, 1.5, 1
            ds.PatientPosition = "HFS"
            _set_pixels(ds, np.round(frames[loc, ph]).astype(np.uint16), 12)
            path = out_dir / f"mr_{ds.InstanceNumber:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def make_enhanced_mr_cine(
    path: Path,
    n_locations: int = 3,
    n_phases: int = 4,
    rows: int = 24,
    cols: int = 28,
    *,
    frames: np.ndarray | None = None,
    pixel_spacing: tuple[float, float] = (1.5, 1.25),
    thickness: float = 8.0,
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    origin: tuple[float, float, float] = (-20.0, 30.0, 40.0),
    rr_ms: float = 800.0,
) -> Path:
    """One Enhanced MR Image instance: *n_locations* × *n_phases* frames (phase-major) with per-frame Plane
    Position, Frame Content (Temporal Position Index, In-Stack Position) and Cardiac Synchronization (Nominal
    Cardiac Trigger Delay Time); orientation and pixel measures shared. *frames*: (location, phase, r, c)."""
    if frames is None:
        frames = np.arange(n_locations * n_phases * rows * cols, dtype=np.float32).reshape(
            n_locations, n_phases, rows, cols) % 4000
    normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
    study_uid = generate_uid()
    ds = base_dataset(ENHANCED_MR_IMAGE_STORAGE, "MR", study_uid, generate_uid(), generate_uid())
    ds.SeriesDescription, ds.ImageType = "CINE ENHANCED", ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = generate_uid(), ""
    ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
    ds.SharedFunctionalGroupsSequence = [_item(
        PixelMeasuresSequence=[_item(PixelSpacing=list(pixel_spacing), SliceThickness=thickness)],
        PlaneOrientationSequence=[_item(ImageOrientationPatient=[f"{v:.6f}" for v in orientation])],
    )]
    per_frame, stack = [], []
    for ph in range(n_phases):
        for loc in range(n_locations):
            position = np.array(origin) + loc * thickness * normal
            per_frame.append(_item(
                FrameContentSequence=[_item(StackID="1", InStackPositionNumber=loc + 1, TemporalPositionIndex=ph + 1,
                                            DimensionIndexValues=[loc + 1, ph + 1])],
                PlanePositionSequence=[_item(ImagePositionPatient=[f"{v:.4f}" for v in position])],
                CardiacSynchronizationSequence=[_item(NominalCardiacTriggerDelayTime=ph * rr_ms / n_phases)],
            ))
            stack.append(frames[loc, ph])
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.NumberOfFrames = len(per_frame)
    _set_pixels(ds, np.round(np.stack(stack)).astype(np.uint16), 12)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


#: Patient Orientation (row, column directions) of the usual display of each (laterality, view).
MG_PATIENT_ORIENTATION = {("L", "CC"): ("A", "R"), ("R", "CC"): ("P", "L"),
                          ("L", "MLO"): ("A", "F"), ("R", "MLO"): ("P", "F")}
#: View Code Sequence codes (CID 4014).
MG_VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}


def make_mg_image(
    path: Path,
    *,
    laterality: str = "L",
    view: str = "CC",
    rows: int = 160,
    cols: int = 128,
    pixels: np.ndarray | None = None,
    imager_pixel_spacing: tuple[float, float] | None = (0.1, 0.1),
    magnification: float | None = 1.15,
    pixel_spacing: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
    view_position: bool = True,
    image_laterality: bool = True,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Path:
    """One Digital Mammography X-Ray Image (For Presentation), 12-bit unsigned. *pixels* (rows, cols) are
    stored values (default: a bright half-disc breast on a dark background, chest wall at column 0).
    ``view_position=False`` leaves only the View Code Sequence; ``image_laterality=False`` leaves only the
    series Laterality."""
    if pixels is None:
        rr, cc = np.mgrid[:rows, :cols]
        pixels = np.where((rr - rows / 2) ** 2 + cc ** 2 <= (0.45 * rows) ** 2, 2500, 200).astype(np.uint16)
    ds = base_dataset(MG_FOR_PRESENTATION_STORAGE, "MG", study_uid or generate_uid(), series_uid or generate_uid(),
                      generate_uid())
    ds.SeriesDescription, ds.ImageType = f"{laterality} {view}", ["ORIGINAL", "PRIMARY", ""]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
    ds.PatientOrientation = list(MG_PATIENT_ORIENTATION.get((laterality, view), ("A", "R")))
    if image_laterality:
        ds.ImageLaterality = laterality
    else:
        ds.Laterality = laterality
    if view_position:
        ds.ViewPosition = view
    code, meaning = MG_VIEW_CODES[view]
    ds.ViewCodeSequence = [_item(CodeValue=code, CodingSchemeDesignator="SCT", CodeMeaning=meaning)]
    ds.BodyPartExamined = "BREAST"
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_pixel_spacing)
    if magnification is not None:
        ds.EstimatedRadiographicMagnificationFactor = magnification
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    ds.PhotometricInterpretation = photometric
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    _set_pixels(ds, np.asarray(pixels, dtype=np.uint16), 12)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


#: A candidate classifier run small enough for a test (``aiws train lung_nodule_classifier --config``): 16-voxel
#: cubes, three widths, six iterations.
TINY_CLASSIFIER_TOML = """
seed = 5
[network]
channels = [4, 8, 16]
[data]
patch = 16
jitter = 2
dot_negatives = 10
tissue_negatives = 10
surface_negatives = 5
[train]
iterations = 6
batch_size = 4
val_every = 3
val_cases = 1
log_every = 2
threads = 1
"""
