"""What every result object shares: IHE AI Results provenance, copied patient/study attributes, durable saving."""
from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset

from imaging.errors import WriteError
from imaging.results import DISCLAIMER, ResultContext, WrittenObject

LOGGER = logging.getLogger(__name__)

#: Patient and study attributes copied from the source into every result (absent ones are left out).
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "OtherPatientIDsSequence", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "IssuerOfAccessionNumberSequence", "ReferringPhysicianName",
    "StudyDescription", "PatientIdentityRemoved", "DeidentificationMethod",
)
#: Purpose of Reference of the algorithm item in Contributing Equipment (DCM 109102).
PROCESSING_EQUIPMENT = CodedConcept("109102", "DCM", "Processing Equipment")


def algorithm_version(software_version: str, model: str | None = None, model_version: int | None = None) -> str:
    """The one way every output writes an algorithm's version: ``<software version> model <name> v<N>``,
    e.g. ``1.0.0 model lung_nodules v6``; the software version alone for a pipeline without a model.

    It names the result series, fills Software Versions and the SR's Algorithm Version, and derives the
    result UIDs, so a new model version gives new objects.

    Raises:
        WriteError: a model without its version (or the reverse), or a result longer than 64 characters
        (a DICOM LO).
    """
    if (model is None) != (model_version is None):
        raise WriteError(f"algorithm version {software_version!r}: give the model name and its version together")
    text = software_version if model is None else f"{software_version} model {model} v{model_version}"
    if not software_version or len(text) > 64 or "\\" in text:
        raise WriteError(f"algorithm version {text!r}: must be 1-64 characters without a backslash (LO)")
    return text


def contributing_equipment(context: ResultContext) -> hd.ContributingEquipment:
    """The algorithm as Contributing Equipment (name, version, manufacturer); see :func:`finish`."""
    algorithm = context.algorithm_id
    return hd.ContributingEquipment(
        manufacturer=context.manufacturer,
        purpose_of_reference=PROCESSING_EQUIPMENT,
        manufacturer_model_name=algorithm.name[:64],
        software_versions=algorithm.version[:64],
        device_serial_number=context.device_serial_number,
        institution_name=context.institution_name or None,
        contribution_datetime=dt.datetime.now(),
        contribution_description=DISCLAIMER,
    )


def copy_patient_study(source: Dataset, target: Dataset) -> None:
    """Copy :data:`PATIENT_STUDY_KEYWORDS` present in *source* into *target*."""
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source:
            target[keyword] = source[keyword]


def finish(ds: Dataset, context: ResultContext, kind: str) -> Dataset:
    """Stamp provenance on a built result: Series Description, model name and software version
    (General Equipment), and the Device UID in the algorithm's Contributing Equipment item (IHE AI Results).

    The Device UID is not put in General Equipment: dciodvfy's IOD tables do
    not list it there and would flag the object as Standard Extended."""
    ds.SeriesDescription = context.series_description(kind)
    ds.ManufacturerModelName = context.pipeline[:64]
    ds.SoftwareVersions = context.model_version[:64]
    for item in ds.get("ContributingEquipmentSequence", []):
        if item.get("ManufacturerModelName") == context.algorithm_id.name[:64]:
            item.DeviceUID = context.device_uid
    if context.institution_name and "InstitutionName" not in ds:
        ds.InstitutionName = context.institution_name
    return ds


def source_header(headers: Sequence[Dataset], what: str) -> Dataset:
    """The first source header, checked to carry a Study Instance UID.

    Raises:
        WriteError: no headers, or no Study Instance UID.
    """
    if not headers or "StudyInstanceUID" not in headers[0]:
        raise WriteError(f"{what}: the source has no DICOM header with a Study Instance UID")
    return headers[0]


def save_dataset(ds: Dataset, directory: Path, name: str | None = None) -> Path:
    """Write *ds* durably as ``directory/<name or SOPInstanceUID>.dcm``: temp file, fsync, rename, fsync dir.

    Raises:
        WriteError: the file cannot be written (disk full, permissions), naming the path.
    """
    directory = Path(directory)
    path = directory / f"{name or ds.SOPInstanceUID}.dcm"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=directory)
    except OSError as exc:
        raise WriteError(f"{path}: cannot save {ds.get('SOPInstanceUID', '?')}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fp:
            ds.save_as(fp, enforce_file_format=True)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise WriteError(f"{path}: cannot save {ds.get('SOPInstanceUID', '?')}: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)  # only still there when something failed before the rename
    LOGGER.debug("saved %s", path)
    return path


def save_result(kind: str, ds: Dataset, directory: Path) -> WrittenObject:
    """Save *ds* durably (:func:`save_dataset`) and return it with the UIDs it was written with.

    Raises:
        WriteError: the file cannot be written, naming the path.
    """
    path = save_dataset(ds, directory)
    return WrittenObject(kind, path, str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ds.SeriesInstanceUID))
