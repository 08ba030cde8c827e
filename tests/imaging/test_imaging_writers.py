"""SR, SEG, SC summary and PDF writers on an axial CT stack: validated by dciodvfy, read back by highdicom,
dumped by dsrdump, parsed by dcmqi tid1500reader, and stored into Orthanc over C-STORE."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.capture import write_summary_capture
from imaging.errors import WriteError
from imaging.pdf import write_pdf_report
from imaging.provenance import save_dataset
from imaging.results import (
    AlgorithmId,
    Code,
    Finding,
    Graphic,
    ImageRegion2D,
    Measurement,
    QualitativeEvaluation,
    ResultContext,
    Segment,
)
from imaging.seg import write_seg
from imaging.sr import write_sr
from imaging.uids import device_uid
from imaging.volume import Volume, load_volume
from imaging_helpers import ALTERED, LUNG, MM, NODULE, c_store, write_phantom
from peers import Orthanc, dciodvfy_errors

TID1500READER = str(Path(sys.executable).parent / "tid1500reader")
CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="2.1.0",
                        manufacturer="AIWS test", institution_name="Test Hospital",
                        algorithm=AlgorithmId("aiws-lung-detector", "2.1.0", (("threshold", "0.5"),)))
LUNG_RADS = Code("LA33-6", "LN", "Lung-RADS category")  # illustrative qualitative evaluation
CATEGORY_3 = Code("LA28333-4", "LN", "Category 3")
VOLUME = Code("118565006", "SCT", "Volume")
DIAMETER = Code("81827009", "SCT", "Diameter")
ML = Code("ml", "UCUM", "milliliter")


def ct_findings() -> list[Finding]:
    return [
        Finding("nodule-1", NODULE, LUNG, (Measurement(DIAMETER, 8.0, MM), Measurement(VOLUME, 0.27, ML)),
                (QualitativeEvaluation(LUNG_RADS, CATEGORY_3),), segment_number=1, label="Solid nodule"),
        Finding("nodule-2", NODULE, LUNG, (Measurement(DIAMETER, 4.5, MM),),
                region=ImageRegion2D(3, Graphic.CIRCLE, ((30.0, 10.0), (30.0, 13.0)))),
        Finding("exam", Code("363679005", "SCT", "Imaging procedure"), None,
                (Measurement(Code("121401", "DCM", "Derived"), 2.0, Code("1", "UCUM", "no units")),)),
    ]


@dataclass
class Written:
    volume: Volume
    seg: Dataset
    files: dict[str, Path]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    root = tmp_path_factory.mktemp("writers")
    phantom = write_phantom(root / "ct", (1, 0, 0, 0, 1, 0), shape=(12, 40, 48), centre_index=(6.0, 14.0, 30.0))
    volume = load_volume(phantom.paths)
    segment = Segment("Nodule 1", ALTERED, NODULE, volume.voxels > 500, "nodule-1", LUNG)
    seg = write_seg(volume, [segment], CONTEXT)
    files = {"seg": save_dataset(seg, root / "out")}
    files["sr"] = save_dataset(write_sr(volume, ct_findings(), CONTEXT, seg=seg), root / "out")
    for n, sc in enumerate(write_summary_capture(volume, ct_findings(), CONTEXT, segments=[segment])):
        files[f"sc{n}"] = save_dataset(sc, root / "out")
    files["pdf"] = save_dataset(write_pdf_report(volume, ct_findings(), CONTEXT, segments=[segment]), root / "out")
    return Written(volume, seg, files)


def test_written_objects(written: Written) -> None:
    assert sorted(written.files) == ["pdf", "sc0", "sc1", "seg", "sr"]  # two key images: slices 3 and 6


@pytest.mark.parametrize("kind", ["seg", "sr", "sc0", "sc1", "pdf"])
def test_dciodvfy_reports_no_error(written: Written, kind: str) -> None:
    assert dciodvfy_errors(written.files[kind]) == []


@pytest.mark.parametrize("kind", ["seg", "sr", "sc0", "pdf"])
def test_patient_study_copied_and_new_series_named(written: Written, kind: str) -> None:
    ds = dcmread(written.files[kind])
    source = written.volume.sources[0].header
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber"):
        assert ds[keyword].value == source[keyword].value
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SeriesDescription.startswith("AIWS lung_nodules 2.1.0")
    algorithm = [i for i in ds.ContributingEquipmentSequence if i.get("ManufacturerModelName") == "aiws-lung-detector"]
    assert algorithm and algorithm[0].SoftwareVersions == "2.1.0" and algorithm[0].Manufacturer == "AIWS test"
    assert algorithm[0].DeviceUID == device_uid(CONTEXT.uid_root, "aiws-lung-detector", "2.1.0")


def test_seg_read_back_by_highdicom(written: Written) -> None:
    seg = hd.seg.segread(written.files["seg"])
    source = written.volume.sources[0].header
    assert seg.number_of_segments == 1
    assert seg.get_segment_description(1).segment_label == "Nodule 1"
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    slices_with_mask = {s.sop_instance_uid for s, k in zip(written.volume.sources, range(12))
                        if (written.volume.voxels[k] > 500).any()}
    assert {uid for _, _, uid in seg.get_source_image_uids()} >= slices_with_mask
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {s.sop_instance_uid for s in written.volume.sources}  # the whole input series


def test_sr_read_back_by_highdicom(written: Written) -> None:
    sr = hd.sr.srread(written.files["sr"])
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    report = sr.content
    volumetric = report.get_volumetric_roi_measurement_groups()
    planar = report.get_planar_roi_measurement_groups()
    other = report.get_image_measurement_groups()
    assert [g.tracking_identifier for g in volumetric] == ["nodule-1"]
    assert [g.tracking_identifier for g in planar] == ["nodule-2"]
    assert [g.tracking_identifier for g in other] == ["exam"]
    assert volumetric[0].tracking_uid == CONTEXT.tracking_uid(written.volume.study_uid, "nodule-1")
    diameter = volumetric[0].get_measurements(name=DIAMETER.concept())[0]
    assert diameter.value == pytest.approx(8.0) and diameter.unit == MM.concept()
    assert volumetric[0].get_qualitative_evaluations()[0].value == CATEGORY_3.concept()
    assert volumetric[0].referenced_segment.referenced_sop_instance_uid == written.seg.SOPInstanceUID
    assert np.allclose(planar[0].roi.value, [[10.5, 30.5], [13.5, 30.5]])  # SCOORD (column, row), centre +0.5
    image = planar[0].roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == written.volume.sources[3].sop_instance_uid


def _content_items(ds: Dataset) -> list[Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items.extend(_content_items(item))
    return items


def test_every_measurement_names_the_algorithm(written: Written) -> None:
    numbers = [i for i in _content_items(dcmread(written.files["sr"])) if i.ValueType == "NUM"]
    assert len(numbers) == 4
    for item in numbers:
        modifiers = {c.ConceptNameCodeSequence[0].CodeValue: c.get("TextValue") for c in item.ContentSequence}
        assert modifiers["111001"] == "aiws-lung-detector"  # Algorithm Name
        assert modifiers["111003"] == "2.1.0"  # Algorithm Version
        assert modifiers["111002"] == "threshold=0.5"  # Algorithm Parameters


def test_sr_dumped_by_dsrdump(written: Written) -> None:
    run = subprocess.run(["dsrdump", str(written.files["sr"])], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "E:" not in run.stderr and "W:" not in run.stderr, run.stderr
    assert run.stdout.count('"Tracking Identifier"') == 3
    assert '"Diameter")="8"' in run.stdout or '"Diameter")="8.0"' in run.stdout


def test_sr_parsed_by_dcmqi_tid1500reader(written: Written, tmp_path: Path) -> None:
    out = tmp_path / "sr.json"
    run = subprocess.run([TID1500READER, "--inputDICOM", str(written.files["sr"]), "--outputMetadata", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    groups = json.loads(out.read_text())["Measurements"]
    assert [g["TrackingIdentifier"] for g in groups] == ["nodule-1", "nodule-2", "exam"]
    assert groups[0]["ReferencedSegment"] == 1
    assert groups[0]["segmentationSOPInstanceUID"] == written.seg.SOPInstanceUID
    assert float(groups[0]["measurementItems"][0]["value"]) == pytest.approx(8.0)
    assert groups[0]["measurementItems"][1]["units"]["CodeValue"] == "ml"


def test_summary_capture_read_back(written: Written) -> None:
    sc = hd.imread(written.files["sc0"])
    assert sc.SamplesPerPixel == 3 and sc.BurnedInAnnotation == "YES"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == written.volume.sources[3].sop_instance_uid
    assert "not for primary diagnosis" in sc.ImageComments
    assert sc.PatientOrientation == ["L", "P"]
    assert sc.get_frame(1).shape == (sc.Rows, sc.Columns, 3)


def test_pdf_holds_the_findings(written: Written) -> None:
    ds = dcmread(written.files["pdf"])
    document = bytes(ds.EncapsulatedDocument)[:int(ds.EncapsulatedDocumentLength)]
    assert document.startswith(b"%PDF-") and document.rstrip().endswith(b"%%EOF")
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert b"1. Solid nodule - Lung \\(image " in document and b"Diameter: 8.0 mm" in document
    assert b"Volume: 0.3 ml" in document and b"nodule-1" not in document  # one precision, no internal id
    assert b"not for primary diagnosis unless validated" in document
    assert b"/Subtype /Image" in document  # the key images
    assert document.count(b"/Type /Page\n") + document.count(b"/Type /Page ") >= 1


def test_uids_are_deterministic_and_change_with_the_model_version(written: Written) -> None:
    again = write_seg(written.volume, [Segment("Nodule 1", ALTERED, NODULE, written.volume.voxels > 500)], CONTEXT)
    assert (again.SeriesInstanceUID, again.SOPInstanceUID) == (written.seg.SeriesInstanceUID,
                                                               written.seg.SOPInstanceUID)
    newer = replace(CONTEXT, model_version="2.2.0", algorithm=AlgorithmId("aiws-lung-detector", "2.2.0"))
    other = write_seg(written.volume, [Segment("Nodule 1", ALTERED, NODULE, written.volume.voxels > 500)], newer)
    assert other.SOPInstanceUID != written.seg.SOPInstanceUID
    assert newer.device_uid != CONTEXT.device_uid
    items = [i for i in other.ContributingEquipmentSequence if i.get("ManufacturerModelName") == "aiws-lung-detector"]
    assert [i.DeviceUID for i in items] == [newer.device_uid]


@pytest.mark.network
def test_orthanc_accepts_every_object_over_c_store(written: Written, orthanc: Orthanc) -> None:
    files = list(written.files.values())
    run = c_store(orthanc, files)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    stored = {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.instances_of_study(written.volume.study_uid)}
    assert {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files} <= stored


def test_writer_errors_name_the_problem(written: Written, tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"mask shape \(3, 3\) is not the source shape"):
        write_seg(written.volume, [Segment("x", ALTERED, NODULE, np.zeros((3, 3), bool))], CONTEXT)
    with pytest.raises(WriteError, match=r"segment 2 not in the SEG \(segments \[1\]\)"):
        write_sr(written.volume, [Finding("n", NODULE, segment_number=2)], CONTEXT, seg=written.seg)
    with pytest.raises(WriteError, match="tracking ids are not unique"):
        write_sr(written.volume, [Finding("n", NODULE), Finding("n", NODULE)], CONTEXT)
    resampled = written.volume.with_voxels(written.volume.voxels, sources=())
    with pytest.raises(WriteError, match="no DICOM source frames"):
        write_seg(resampled, [Segment("x", ALTERED, NODULE, written.volume.voxels > 500)], CONTEXT)
    with pytest.raises(WriteError, match="must be a UCUM code"):
        Measurement(DIAMETER, 1.0, Code("mm", "SCT", "mm"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WriteError, match="cannot save"):
        save_dataset(written.seg, blocker / "sub")


@pytest.mark.parametrize("overlap", [False, True])
def test_several_segments_read_back_apart(written: Written, tmp_path: Path, overlap: bool) -> None:
    shape = written.volume.shape
    first, second = np.zeros(shape, bool), np.zeros(shape, bool)
    first[2:5, 5:15, 5:15] = True
    second[4:8, 12 if overlap else 20:30, 20:30] = True  # overlapping segments need one frame per segment
    seg = write_seg(written.volume, [Segment("A", ALTERED, NODULE, first, "a"), Segment("B", ALTERED, NODULE, second, "b")],
                    CONTEXT)
    path = save_dataset(seg, tmp_path)
    assert dciodvfy_errors(path) == []
    volume = hd.seg.segread(path).get_volume(combine_segments=False)
    array = np.asarray(volume.array)  # (slice, r, c, segment) on the frames that hold any segment
    for j in range(array.shape[0]):  # highdicom orders its slices its own way: match them by position
        k = written.volume.lps_to_index(volume.affine[:3, :3] @ [j, 0, 0] + volume.affine[:3, 3])[0]
        assert np.allclose(k, np.round(k), atol=1e-3) and np.allclose(k[1:], 0.0, atol=1e-3)
        for number, mask in ((1, first), (2, second)):
            assert np.array_equal(array[j, ..., number - 1], mask[int(round(k[0]))])
    assert array[..., 0].sum() == first.sum() and array[..., 1].sum() == second.sum()


def test_write_bundle_saves_every_object(written: Written, tmp_path: Path) -> None:
    from imaging.bundle import BundleOptions, write_bundle

    segment = Segment("Nodule 1", ALTERED, NODULE, written.volume.voxels > 500, "nodule-1")
    objects = write_bundle(written.volume, ct_findings(), CONTEXT, tmp_path / "bundle", segments=[segment],
                           options=BundleOptions(pdf=True, max_key_images=1))
    assert [o.kind for o in objects] == ["seg", "sr", "sc", "pdf"]
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == sorted(o.path.name for o in objects)
    assert objects[0].sop_instance_uid == written.seg.SOPInstanceUID  # deterministic: same as the fixture's SEG
    assert dcmread(objects[1].path).CurrentRequestedProcedureEvidenceSequence  # SR evidence lists the sources
