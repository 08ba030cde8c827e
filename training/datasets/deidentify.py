"""De-identified export of a ``dicom-seg`` dataset (``aiws dataset export --de-identify``).

DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile, applied by dicognito (a maintained
implementation of that profile on pydicom: names, IDs, addresses, institution and equipment replaced, UIDs
remapped, private attributes removed), with the Retain Longitudinal Temporal Information with Modified Dates
option (dates shifted) and the Clean Structured Content option (the SR content tree keeps its measurements and
references, its names, dates and UIDs are replaced like the header's).

- One pseudonymisation per patient: dicognito's anonymizer is seeded with (site secret, original Patient ID), so
  the pseudonym, the UID map and the date shift are the same for every study of the patient, in this run and in
  any later run with the same key. UIDs are remapped with the same map inside sequences too, so a SEG's
  Referenced Series / Source Image / Frame of Reference UIDs and an SR's evidence and content references still
  name the (remapped) images.
- Dates are shifted by a whole number of days per patient (62 to 730 days back); times are kept.
- Pixel data is not touched (byte-identical). An image whose Burned In Annotation is YES or absent (unknown) is
  not exported: it is listed in the report file with the reason.
- The key (original Patient ID <-> pseudonym, date shift, and the secret) is written to its own file, never
  inside the output folder; a second export with the same key file gives the same pseudonyms and shifts.

Output layout (read by :mod:`training.readers.dicom_seg`): ``OUT/<pseudonym>/<study UID>/<series UID>/<SOP UID>.dcm``.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dicognito.anonymizer import Anonymizer
from dicognito.datetimeanonymizer import DateTimeAnonymizer
from dicognito.randomizer import Randomizer
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

LOGGER = logging.getLogger(__name__)

KEY_FORMAT = "aiws-deid-key/1"
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 62, 730
#: Type 3 attributes of PS3.15 Table E.1-1 (action X) that dicognito keeps: removed here.
REMOVED = ("StudyDescription", "SeriesDescription", "ImageComments", "PatientComments", "AdditionalPatientHistory",
           "PatientAge", "PatientSize", "PatientWeight", "ProtocolName", "RequestAttributesSequence",
           "PerformedProcedureStepDescription", "AdmittingDiagnosesDescription", "DerivationDescription",
           "OtherPatientIDsSequence", "PatientAddress", "EthnicGroup", "MedicalAlerts", "Allergies")
#: Type 2 attributes of Table E.1-1 (action Z) emptied rather than replaced.
EMPTIED = ("PatientBirthDate",)
#: PS3.16 CID 7050 codes of what was done.
METHODS = (("113100", "Basic Application Confidentiality Profile"), ("113104", "Clean Structured Content Option"),
           ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
NOT_IMAGES = ("SEG", "SR", "KO", "PR", "DOC", "RTSTRUCT")


class DeidError(Exception):
    """The export cannot run (bad folders, an unreadable or foreign key file)."""


@dataclass(frozen=True)
class Pseudonym:
    """What the key holds for one patient."""

    pseudonym: str
    date_shift_days: int


@dataclass
class Key:
    """The re-identification key: the secret seeding every patient's map, and per original Patient ID its
    pseudonym and date shift (days, negative: back in time)."""

    secret: str
    patients: dict[str, Pseudonym] = field(default_factory=dict)

    @classmethod
    def load_or_new(cls, path: Path) -> Key:
        """The key in *path*, or a new one (random secret) when the file does not exist.

        Raises:
            DeidError: the file is not a key of this format.
        """
        if not path.exists():
            return cls(secrets.token_hex(32))
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != KEY_FORMAT:
                raise DeidError(f"{path.name}: not a de-identification key ({KEY_FORMAT})")
            return cls(str(doc["secret"]), {k: Pseudonym(str(v["pseudonym"]), int(v["date_shift_days"]))
                                            for k, v in doc["patients"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeidError(f"{path.name}: unreadable key file ({type(exc).__name__})") from None

    def save(self, path: Path) -> None:
        """Write the key durably, readable by its owner only."""
        doc = {"format": KEY_FORMAT, "secret": self.secret,
               "patients": {k: {"pseudonym": v.pseudonym, "date_shift_days": v.date_shift_days}
                            for k, v in sorted(self.patients.items())}}
        _write_private(path, json.dumps(doc, indent=2).encode("utf-8"))

    def shift_days(self, patient_id: str) -> int:
        """The patient's date shift: from the key, else derived from (secret, Patient ID)."""
        if patient_id in self.patients:
            return self.patients[patient_id].date_shift_days
        n = Randomizer(self._seed(patient_id)).to_int("date_shift_days")
        return -(MIN_SHIFT_DAYS + n % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1))

    def anonymizer(self, patient_id: str) -> Anonymizer:
        """dicognito's anonymizer for this patient, its dates shifted by whole days."""
        anonymizer = Anonymizer(seed=self._seed(patient_id))
        anonymizer.add_element_handler(DateTimeAnonymizer(24 * self.shift_days(patient_id)))
        return anonymizer

    def _seed(self, patient_id: str) -> str:
        return f"{self.secret}|{patient_id}"


@dataclass(frozen=True)
class ExportSummary:
    exported: int
    withheld: tuple[tuple[str, str], ...]     # (input file relative to --in, reason)
    patients: int


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*") if p.is_file())


def _withheld_reason(ds: Dataset) -> str | None:
    """Why an object is not exported (burned-in annotation YES or unknown), or None."""
    if "PixelData" not in ds or str(ds.get("Modality", "")) in NOT_IMAGES:
        return None
    value = str(ds.get("BurnedInAnnotation", "")).upper()
    if value == "NO":
        return None
    return "BurnedInAnnotation is YES" if value == "YES" else "BurnedInAnnotation absent (unknown)"


def _clean(ds: Dataset) -> None:
    """What the profile asks beyond dicognito's replacements: private attributes and free text removed,
    birth date emptied, the methods recorded (PS3.15 E.1.1)."""
    ds.remove_private_tags()
    for keyword in REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in EMPTIED:
        if keyword in ds:
            setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 Basic Profile (dicognito); dates shifted per patient"
    codes = []
    for value, meaning in METHODS:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def deidentify(ds: Dataset, key: Key) -> Dataset:
    """De-identify *ds* in place with its patient's map (added to *key* when new); returns it."""
    original = str(ds.get("PatientID", ""))
    key.anonymizer(original).anonymize(ds)
    _clean(ds)
    key.patients.setdefault(original, Pseudonym(str(ds.get("PatientID", "")), key.shift_days(original)))
    return ds


def export(in_dir: Path, out_dir: Path, key_path: Path, report_path: Path) -> ExportSummary:
    """De-identify every DICOM file under *in_dir* into *out_dir* (``dicom-seg`` layout); the key goes to
    *key_path* (reused when it exists) and the withheld files with their reasons to *report_path*.

    Raises:
        DeidError: *in_dir* is not a folder, the key or report would lie inside *out_dir* or *in_dir*,
            or the key file is not one.
    """
    if not in_dir.is_dir():
        raise DeidError(f"{in_dir}: not a folder")
    for what, path in (("key", key_path), ("report", report_path)):
        if _inside(path, out_dir) or _inside(path, in_dir):
            raise DeidError(f"--{what}-out {path.name}: must lie outside the input and output dataset folders")
    if _inside(out_dir, in_dir):
        raise DeidError("--out must not lie inside --in")
    key = Key.load_or_new(key_path)
    withheld: list[tuple[str, str]] = []
    exported = 0
    for path in _files(in_dir):
        name = path.relative_to(in_dir).as_posix()
        try:
            ds = dcmread(path)
        except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
            withheld.append((name, f"not readable as DICOM ({type(exc).__name__})"))
            continue
        reason = _withheld_reason(ds)
        if reason is not None:
            withheld.append((name, reason))
            continue
        deidentify(ds, key)
        target = out_dir / str(ds.PatientID) / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID) / \
            f"{ds.SOPInstanceUID}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        exported += 1
        LOGGER.debug("exported %s", target.name)
    key.save(key_path)
    report = {"exported": exported, "withheld": [{"file": f, "reason": r} for f, r in withheld]}
    _write_private(report_path, json.dumps(report, indent=2).encode("utf-8"))
    LOGGER.info("de-identified export: %d files, %d withheld, %d patients in the key", exported, len(withheld),
                len(key.patients))
    return ExportSummary(exported, tuple(withheld), len(key.patients))
