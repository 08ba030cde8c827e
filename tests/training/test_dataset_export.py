"""De-identified export (PS3.15 Basic Profile via dicognito): identifying attributes gone, dates shifted and UIDs
remapped consistently per patient, pixels byte-identical, dciodvfy clean, SEG and SR still label the same voxels
through training.readers, burned-in annotation withheld and reported, the key outside the dataset and reused."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from factories import make_ct_series
from imaging.results import Finding, Measurement, ResultContext
from imaging.sr import write_sr
from imaging.volume import load_volume
from models.lung_nodules.report import DIAMETER, MM, NODULE
from peers import dciodvfy_errors, have_tool
from training.datasets.deidentify import DeidError, export
from training.readers import read_dataset

CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="2.1.0")
IDENTIFYING = {"PatientName": "DOE^JANE", "PatientID": "MRN-4711", "PatientBirthDate": "19610203",
               "AccessionNumber": "ACC-998877", "InstitutionName": "Saint Example Hospital",
               "ReferringPhysicianName": "HOUSE^GREGORY", "StudyID": "S-12345"}


def _identify(paths: list[Path], study_date: str, burned_in: str | None = "NO", **extra: str) -> None:
    for p in paths:
        ds = dcmread(p)
        for keyword, value in {**IDENTIFYING, **extra}.items():
            setattr(ds, keyword, value)
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
        ds.StudyDescription = "CHEST CT for Jane Doe"
        ds.PatientPosition, ds.AcquisitionNumber = "HFS", 1   # the factory's CT lacks these (dciodvfy errors)
        if burned_in is not None:
            ds.BurnedInAnnotation = burned_in
        ds.save_as(p, enforce_file_format=True)


def _labelled_study(root: Path, study_date: str, study_uid: str) -> tuple[list[Path], np.ndarray]:
    ct = make_ct_series(root / "ct", n_slices=6, study_uid=study_uid, seed=int(study_date[-2:]))
    _identify(ct, study_date)
    volume = load_volume(ct)
    label = np.zeros(volume.shape, dtype=np.uint8)
    label[2:5, 20:26, 30:36] = 1
    seg = hd.seg.Segmentation(
        source_images=[dcmread(p) for p in ct], pixel_array=label,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="Nodule", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)],
        series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    seg.save_as(root / "seg.dcm")
    sr = write_sr(volume, [Finding("nodule-1", NODULE, measurements=(Measurement(DIAMETER, 7.5, MM),), segment_number=1)],
                  CONTEXT, seg=seg)
    sr.save_as(root / "sr.dcm", enforce_file_format=True)
    return ct, label


@pytest.fixture
def hospital(tmp_path: Path) -> dict[str, object]:
    src = tmp_path / "pacs_export"
    ct1, label1 = _labelled_study(src / "study1", "20240110", "1.2.826.0.1.3680043.8.498.501")
    ct2, label2 = _labelled_study(src / "study2", "20240610", "1.2.826.0.1.3680043.8.498.502")
    burned = make_ct_series(src / "scout", n_slices=2)
    _identify(burned, "20240110", burned_in="YES")
    unknown = make_ct_series(src / "scout2", n_slices=1)
    _identify(unknown, "20240110", burned_in=None)
    return {"src": src, "ct": ct1 + ct2, "labels": {dcmread(ct1[0]).SeriesInstanceUID: label1,
                                                    dcmread(ct2[0]).SeriesInstanceUID: label2}}


def _all(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm"))


def test_export_removes_identity_and_keeps_labels(tmp_path: Path, hospital: dict[str, object]) -> None:
    src, out, key = hospital["src"], tmp_path / "deid", tmp_path / "secure" / "key.json"
    key.parent.mkdir()
    summary = export(src, out, key, tmp_path / "secure" / "report.json")
    assert summary.exported == 2 * (6 + 2) and summary.patients == 1
    assert {r for _, r in summary.withheld} == {"BurnedInAnnotation is YES", "BurnedInAnnotation absent (unknown)"}
    report = json.loads((tmp_path / "secure" / "report.json").read_text())
    assert sorted(w["file"] for w in report["withheld"]) == ["scout/ct_0000.dcm", "scout/ct_0001.dcm",
                                                            "scout2/ct_0000.dcm"]
    originals = {str(dcmread(p).SOPInstanceUID): p for p in src.rglob("*.dcm")}
    files = _all(out)
    assert not any(p.name.startswith("key") for p in out.rglob("*"))
    pseudonyms = set()
    for path in files:
        ds = dcmread(path)
        text = path.read_bytes()
        for value in IDENTIFYING.values():
            assert value.encode() not in text, (path.name, value)
        assert b"Jane Doe" not in text
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.get("PatientBirthDate", "") == ""
        assert str(ds.SOPInstanceUID) not in originals
        assert str(ds.StudyInstanceUID) not in {"1.2.826.0.1.3680043.8.498.501", "1.2.826.0.1.3680043.8.498.502"}
        pseudonyms.add(str(ds.PatientID))
        if ds.Modality == "CT":
            assert ds.StudyDate not in ("20240110", "20240610")
    assert len(pseudonyms) == 1
    # dates shifted by the same number of days for both studies of the patient (the interval is kept)
    by_study = {}
    for path in files:
        ds = dcmread(path)
        by_study[str(ds.StudyInstanceUID)] = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
    first, second = sorted(by_study.values())
    assert (second - first).days == (dt.date(2024, 6, 10) - dt.date(2024, 1, 10)).days
    doc = json.loads(key.read_text())
    (entry,) = doc["patients"].values()
    assert list(doc["patients"]) == ["MRN-4711"] and entry["pseudonym"] == pseudonyms.pop()
    assert dt.date(2024, 1, 10) + dt.timedelta(days=entry["date_shift_days"]) == first
    assert -730 <= entry["date_shift_days"] <= -62
    # pixel data byte-identical (matched by instance number within each series and its position)
    before = {(tuple(dcmread(p).ImagePositionPatient), str(dcmread(p).StudyInstanceUID)[-3:]): dcmread(p).PixelData
              for p in hospital["ct"]}
    after = sorted(dcmread(p).PixelData for p in files if dcmread(p).Modality == "CT")
    assert after == sorted(before.values())
    # every reference (SEG sources and series, SR evidence and content tree) names an exported object
    datasets = [dcmread(p) for p in files]
    sops = {str(ds.SOPInstanceUID) for ds in datasets}
    for ds in datasets:
        if ds.Modality not in ("SEG", "SR"):
            continue
        refs: set[str] = set()
        ds.walk(lambda d, e: refs.add(str(e.value)) if e.keyword == "ReferencedSOPInstanceUID" else None)
        assert refs and refs <= sops, ds.Modality
        ct_frames = {str(c.FrameOfReferenceUID) for c in datasets if c.Modality == "CT"
                     and c.StudyInstanceUID == ds.StudyInstanceUID}
        if ds.Modality == "SEG":
            assert {str(ds.FrameOfReferenceUID)} == ct_frames
    # SEG and SR still reference the remapped images: the labels land on the same voxels
    result = read_dataset(out, "dicom-seg")
    assert len(result.cases) == 2 and not result.skipped
    labels = list(hospital["labels"].values())
    for case in result.cases:
        assert case.case_id not in hospital["labels"]
        assert any(np.array_equal(case.label.voxels, label) for label in labels)
        (nodule,) = case.nodules
        assert nodule.diameter_mm == 7.5
        np.testing.assert_allclose(case.image.lps_to_index(np.array([nodule.centre_lps_mm]))[0], [3, 22.5, 32.5],
                                   atol=1e-3)


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_export_output_passes_dciodvfy(tmp_path: Path, hospital: dict[str, object]) -> None:
    export(hospital["src"], tmp_path / "deid", tmp_path / "key.json", tmp_path / "report.json")
    files = _all(tmp_path / "deid")
    kinds = {}
    for path in files:
        kinds.setdefault(dcmread(path).Modality, path)
    assert set(kinds) == {"CT", "SEG", "SR"}
    for modality, path in kinds.items():
        assert dciodvfy_errors(path) == [], modality


def test_second_export_reuses_the_key(tmp_path: Path, hospital: dict[str, object]) -> None:
    key, report = tmp_path / "key.json", tmp_path / "report.json"
    export(hospital["src"], tmp_path / "a", key, report)
    first = json.loads(key.read_text())
    export(hospital["src"], tmp_path / "b", key, report)
    assert json.loads(key.read_text()) == first
    assert [p.relative_to(tmp_path / "a") for p in _all(tmp_path / "a")] == \
        [p.relative_to(tmp_path / "b") for p in _all(tmp_path / "b")]   # same pseudonym and UIDs
    # the patient's later study, exported on its own with the key: same pseudonym, same shift
    export(hospital["src"] / "study2", tmp_path / "later", key, report)
    assert json.loads(key.read_text()) == first
    (folder,) = (tmp_path / "later").iterdir()
    assert folder.name == first["patients"]["MRN-4711"]["pseudonym"]
    later = dcmread(next(folder.rglob("*.dcm")))
    shift = dt.timedelta(days=first["patients"]["MRN-4711"]["date_shift_days"])
    assert later.StudyDate == (dt.date(2024, 6, 10) + shift).strftime("%Y%m%d")
    other = tmp_path / "other_key.json"
    export(hospital["src"], tmp_path / "c", other, report)
    assert json.loads(other.read_text())["patients"]["MRN-4711"] != first["patients"]["MRN-4711"]


def test_key_inside_the_dataset_is_refused(tmp_path: Path, hospital: dict[str, object]) -> None:
    with pytest.raises(DeidError, match="outside"):
        export(hospital["src"], tmp_path / "deid", tmp_path / "deid" / "key.json", tmp_path / "report.json")


def test_cli_export_lists_withheld_files(tmp_path: Path, hospital: dict[str, object],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from aiws.cli import main

    key = tmp_path / "key.json"
    args = ["dataset", "export", "--in", str(hospital["src"]), "--out", str(tmp_path / "deid"), "--key-out", str(key)]
    assert main(args) != 0                                   # --de-identify is required
    assert "--de-identify is required" in capsys.readouterr().err
    assert main([*args, "--de-identify"]) == 0
    console = capsys.readouterr().out
    assert "16 file(s) de-identified, 1 patient(s)" in console
    assert "3 withheld" in console and "scout" not in console   # names only in the report beside the key
    assert (tmp_path / "key.report.json").is_file() and key.is_file()
    assert not any(p.suffix == ".json" for p in (tmp_path / "deid").rglob("*"))
