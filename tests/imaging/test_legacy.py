"""Legacy but legal values in copied patient/study attributes are normalised, not fatal to a writer."""
from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from imaging.legacy import normalise_legacy_values
from imaging.provenance import PATIENT_STUDY_KEYWORDS


def _legacy_header() -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Modality = "OT"
    ds.PatientName = "ward"
    ds.PatientID = "P1"
    ds.add_new(0x00100030, "DA", "03/99")  # PatientBirthDate, no reading in today's form
    ds.add_new(0x00080020, "DA", "1997.04.24")  # StudyDate, ACR-NEMA form
    ds.add_new(0x00080030, "TM", "14:04:38")  # StudyTime with colons
    ds.PatientSex = "MALE"
    ds.add_new(0x00101010, "AS", "45")  # PatientAge without its unit
    ds[0x00101030] = RawDataElement(Tag(0x00101030), "DS", 5, b"heavy", 0, False, True)  # PatientWeight as read
    ds.StudyID = "S1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    return ds


def test_legacy_values_normalised_emptied_or_removed() -> None:
    ds = _legacy_header()
    changed = normalise_legacy_values(ds, PATIENT_STUDY_KEYWORDS)
    assert set(changed) == {"PatientBirthDate", "StudyDate", "StudyTime", "PatientSex", "PatientAge",
                            "PatientWeight"}
    assert (ds.StudyDate, ds.StudyTime, ds.PatientSex, ds.PatientAge) == ("19970424", "140438", "M", "045Y")
    assert ds.PatientBirthDate == ""  # Type 2: kept, empty
    assert "PatientWeight" not in ds  # Type 3: left out
    assert str(ds.PatientName) == "ward" and ds.PatientID == "P1"  # odd but legal: unchanged
    assert normalise_legacy_values(ds, PATIENT_STUDY_KEYWORDS) == []  # idempotent


@pytest.mark.parametrize("raw,expected", [("140438.123", "140438.123"), ("1404", "1404"), ("14:04", "1404"),
                                          ("25:00", ""), ("noon", "")])
def test_times(raw: str, expected: str) -> None:
    ds = Dataset()
    ds.add_new(0x00080030, "TM", raw)
    normalise_legacy_values(ds, ["StudyTime"])
    assert ds.StudyTime == expected


def test_secondary_capture_from_a_legacy_header() -> None:
    """highdicom refuses StudyTime '14:04:38' (ValueError); the normalised header is written."""
    ref = dcmread(get_testdata_file("ExplVR_BigEnd.dcm"), stop_before_pixels=True)
    assert ":" in str(ref.StudyTime)
    normalise_legacy_values(ref, PATIENT_STUDY_KEYWORDS)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref, pixel_array=np.zeros((8, 8, 3), np.uint8), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=generate_uid(), series_number=1,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="AIWS", patient_orientation=("L", "P"),
    )
    assert str(sc.StudyTime) == "140438" and sc.StudyInstanceUID == ref.StudyInstanceUID
