"""The writers that moved into imaging (issue 22): SR over several 2D images and with SCOORD3D, SEG with an
instance index, GSPS, the Secondary Capture of a rendered page, and the one durable save that returns the
UIDs written. Each object is validated by dciodvfy and read back (highdicom, dcmqi tid1500reader)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage, generate_uid

from factories import make_mg_image
from imaging.errors import WriteError
from imaging.gsps import write_gsps
from imaging.mammo import Mammogram, load_mammogram
from imaging.provenance import save_result
from imaging.results import (
    Code,
    Finding,
    Graphic,
    Graphic3D,
    ImageRef,
    ImageRegion2D,
    ImageRegion3D,
    Mark,
    Measurement,
    QualitativeEvaluation,
    RenderedPage,
    ResultContext,
    Segment,
)
from imaging.sc import write_page_capture
from imaging.seg import write_seg
from imaging.sr import write_sr
from imaging.volume import Volume, load_volume
from imaging_helpers import ALTERED, LUNG, MM, NODULE, write_phantom
from models.pipeline import OutputFile
from peers import dciodvfy_errors

TID1500READER = str(Path(sys.executable).parent / "tid1500reader")
PERCENT = Code("%", "UCUM", "percent")
CERTAINTY = Code("111012", "DCM", "Certainty of Finding")
MASS = Code("129788004", "SCT", "Mammographic breast mass")
BREAST = {"L": Code("80248007", "SCT", "Left breast"), "R": Code("73056007", "SCT", "Right breast")}
DIAMETER = Code("81827009", "SCT", "Diameter")


@pytest.fixture(scope="module")
def mammograms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Mammogram, ...]:
    root = tmp_path_factory.mktemp("mg")
    study, series = generate_uid(), generate_uid()
    paths = [make_mg_image(root / f"{side}{view}.dcm", laterality=side, view=view, study_uid=study, series_uid=series)
             for side, view in (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))]
    return tuple(load_mammogram(p) for p in paths)


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Volume:
    phantom = write_phantom(tmp_path_factory.mktemp("ct") / "ct", (1, 0, 0, 0, 1, 0), shape=(12, 40, 48),
                            centre_index=(6.0, 14.0, 30.0))
    return load_volume(phantom.paths)


def _rectangle(image: int, r0: float, c0: float, r1: float, c1: float) -> ImageRegion2D:
    return ImageRegion2D(image, Graphic.POLYLINE, ((r0, c0), (r0, c1), (r1, c1), (r1, c0)))


def _tid1500(path: Path, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    out = tmp_path / f"{path.stem}.json"
    run = subprocess.run([TID1500READER, "--inputDICOM", str(path), "--outputMetadata", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


def test_sr_over_several_images_refers_each_region_to_its_image(mammograms: tuple[Mammogram, ...],
                                                                 context: ResultContext, tmp_path: Path) -> None:
    findings = [
        Finding("F1-LCC", MASS, BREAST["L"], (Measurement(CERTAINTY, 71.0, PERCENT),),
                region=_rectangle(0, 40.0, 10.0, 60.0, 30.0)),
        Finding("F1-RMLO", MASS, BREAST["R"], (Measurement(CERTAINTY, 55.0, PERCENT),),
                region=_rectangle(3, 80.0, 20.0, 95.0, 41.0)),
        Finding("exam", Code("71651007", "SCT", "Mammography"), Code("63762007", "SCT", "Both breasts"),
                (Measurement(Code("AIWS-EXAM-SCORE", "99AIWS", "Exam suspicion score (1-10)"), 7.0,
                             Code("{score}", "UCUM", "score")),)),
    ]
    written = save_result("sr", write_sr(list(mammograms), findings, context), tmp_path)
    assert dciodvfy_errors(written.path) == []
    sr = hd.sr.srread(written.path)
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for series in s.ReferencedSeriesSequence for i in series.ReferencedSOPSequence}
    assert evidence == {m.source.sop_instance_uid for m in mammograms}
    planar = sr.content.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in planar] == ["F1-LCC", "F1-RMLO"]
    for group, image in zip(planar, (mammograms[0], mammograms[3])):
        assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
            image.source.sop_instance_uid
    # (column, row) with the pixel centre at +0.5, closed: the continuous box corners
    assert np.allclose(planar[0].roi.value, [[10.5, 40.5], [30.5, 40.5], [30.5, 60.5], [10.5, 60.5], [10.5, 40.5]])
    assert [g.tracking_identifier for g in sr.content.get_image_measurement_groups()] == ["exam"]
    groups = _tid1500(written.path, tmp_path)["Measurements"]
    assert sorted(g["TrackingIdentifier"] for g in groups) == ["F1-LCC", "F1-RMLO", "exam"]


def test_sr_over_several_images_refuses_what_it_cannot_place(mammograms: tuple[Mammogram, ...],
                                                              context: ResultContext) -> None:
    beyond = Finding("F9", MASS, None, region=_rectangle(4, 1.0, 1.0, 5.0, 5.0))
    with pytest.raises(WriteError, match="image 4 does not exist"):
        write_sr(mammograms, [beyond], context)
    on_segment = Finding("F8", MASS, None, segment_number=1)
    with pytest.raises(WriteError, match="needs one source image or volume"):
        write_sr(mammograms, [on_segment], context, seg=None)


def test_sr_with_scoord3d_regions_in_the_frame_of_reference(ct: Volume, context: ResultContext,
                                                            tmp_path: Path) -> None:
    polygon = ImageRegion3D(Graphic3D.POLYGON, ((6.0, 10.0, 26.0), (6.0, 10.0, 34.0), (6.0, 18.0, 30.0)))
    ellipsoid = ImageRegion3D(Graphic3D.ELLIPSOID, ((6.0, 14.0, 26.0), (6.0, 14.0, 34.0), (6.0, 10.0, 30.0),
                                                    (6.0, 18.0, 30.0), (4.0, 14.0, 30.0), (8.0, 14.0, 30.0)))
    findings = [Finding("nodule-1", NODULE, LUNG, (Measurement(DIAMETER, 8.0, MM),), region3d=polygon),
                Finding("nodule-2", NODULE, LUNG, (Measurement(DIAMETER, 6.0, MM),), region3d=ellipsoid)]
    written = save_result("sr", write_sr(ct, findings, context), tmp_path)
    assert dciodvfy_errors(written.path) == []
    sr = hd.sr.srread(written.path)
    [planar] = sr.content.get_planar_roi_measurement_groups()
    [volumetric] = sr.content.get_volumetric_roi_measurement_groups()
    assert (planar.tracking_identifier, volumetric.tracking_identifier) == ("nodule-1", "nodule-2")
    lps = (ct.affine @ np.array([[6.0, 10.0, 26.0, 1.0]]).T)[:3, 0]
    assert planar.roi.ReferencedFrameOfReferenceUID == ct.frame_of_reference_uid
    assert np.allclose(planar.roi.value[0], lps, atol=1e-3) and np.allclose(planar.roi.value[-1], lps, atol=1e-3)
    items = [i for i in dcmread(written.path).ContentSequence[-1].ContentSequence
             if i.ValueType == "CONTAINER"]
    surfaces = [s for group in items for s in group.ContentSequence if s.ValueType == "SCOORD3D"]
    assert sorted(str(s.GraphicType) for s in surfaces) == ["ELLIPSOID", "POLYGON"]
    assert all(s.ReferencedFrameOfReferenceUID == ct.frame_of_reference_uid for s in surfaces)


def test_a_finding_has_one_place() -> None:
    polygon = ImageRegion3D(Graphic3D.POLYGON, ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)))
    with pytest.raises(WriteError, match="not both"):
        Finding("n", NODULE, segment_number=1, region3d=polygon)
    with pytest.raises(WriteError, match="needs 6 points"):
        ImageRegion3D(Graphic3D.ELLIPSOID, ((0.0, 0.0, 0.0),) * 4)


def test_seg_instance_index_gives_the_next_instance_of_the_series(ct: Volume, context: ResultContext,
                                                                  tmp_path: Path) -> None:
    segments = [Segment("Nodule 1", ALTERED, NODULE, ct.voxels > 500, "nodule-1", LUNG)]
    first = save_result("seg", write_seg(ct, segments, context), tmp_path)
    second = save_result("seg", write_seg(ct, segments, context, index=1, description="ES phase 9 of 25"), tmp_path)
    assert dciodvfy_errors(second.path) == []
    seg = hd.seg.segread(second.path)
    assert second.sop_instance_uid == context.uids(ct.study_uid, "seg", 1)[1] == seg.SOPInstanceUID
    assert second.sop_instance_uid != first.sop_instance_uid
    assert second.series_instance_uid == first.series_instance_uid == seg.SeriesInstanceUID
    assert seg.InstanceNumber == 2 and seg.ContentDescription == "ES phase 9 of 25"
    assert seg.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID


def test_gsps_marks_read_back(mammograms: tuple[Mammogram, ...], context: ResultContext, tmp_path: Path) -> None:
    header = mammograms[1].source.header
    marks = [Mark((40.0, 10.0, 60.0, 30.0), "F1 mass 71", "F1-LMLO", context.tracking_uid(mammograms[1].study_uid,
                                                                                          "F1-LMLO")),
             Mark((150.0, 100.0, 170.0, 140.0), "F2 calc 20", "F2-LMLO", "2.25.12345")]  # clipped to 160 x 128
    written = save_result("gsps", write_gsps(header, marks, context, 2), tmp_path)
    assert dciodvfy_errors(written.path) == []
    gsps = dcmread(written.path)  # highdicom 0.28 has no presentation-state reader
    assert gsps.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage
    assert written.sop_instance_uid == context.uids(mammograms[1].study_uid, "gsps", 2)[1]
    assert gsps.InstanceNumber == 2 and gsps.Laterality == "L"
    [annotation] = gsps.GraphicAnnotationSequence
    assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == header.SOPInstanceUID
    layer = "AIWS_LUNG_NODULE"  # the pipeline's name cut to 16 characters (CS)
    assert annotation.GraphicLayer == gsps.GraphicLayerSequence[0].GraphicLayer == layer
    rects = [np.asarray(g.GraphicData, dtype=float).reshape(-1, 2) for g in annotation.GraphicObjectSequence]
    assert np.allclose(rects[0], [[10, 40], [30, 40], [30, 60], [10, 60], [10, 40]])
    assert rects[1][:, 0].max() == 128 and rects[1][:, 1].max() == 160
    assert [t.UnformattedTextValue for t in annotation.TextObjectSequence] == ["F1 mass 71", "F2 calc 20"]
    assert gsps.SoftcopyVOILUTSequence[0].WindowCenter == 2048
    empty = write_gsps(header, [], context, 3, empty_text="nothing marked")
    assert empty.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "nothing marked"


def test_page_capture_keeps_the_pixels_and_names_its_sources(mammograms: tuple[Mammogram, ...],
                                                             context: ResultContext, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
    refs = tuple(ImageRef(m.source.sop_class_uid, m.source.sop_instance_uid) for m in mammograms)
    page = RenderedPage(pixels, mammograms[0].source.header, refs, derivation="four views")
    written = save_result("sc", write_page_capture(page, context, index=1), tmp_path)
    assert dciodvfy_errors(written.path) == []
    ds = dcmread(written.path)
    assert np.array_equal(ds.pixel_array, pixels)
    assert written.sop_instance_uid == context.uids(mammograms[0].study_uid, "sc", 1)[1] and ds.InstanceNumber == 2
    assert [i.ReferencedSOPInstanceUID for i in ds.SourceImageSequence] == [r.sop_instance_uid for r in refs]
    assert ds.PatientOrientation == "" and ds.Laterality == "" and ds.BurnedInAnnotation == "YES"
    assert ds.DerivationDescription == "four views"
    assert ds.PatientID == mammograms[0].source.header.PatientID
    assert ds.SeriesDescription == context.series_description("sc")
    with pytest.raises(WriteError, match="RGB uint8"):
        RenderedPage(pixels[..., 0], mammograms[0].source.header)


def test_save_result_returns_the_uids_written_and_leaves_no_temporary_file(ct: Volume, context: ResultContext,
                                                                          tmp_path: Path) -> None:
    findings = [Finding("exam", Code("363679005", "SCT", "Imaging procedure"),
                        evaluations=(QualitativeEvaluation(Code("LR", "99AIWS", "Category"),
                                                           Code("2", "99AIWS", "Category 2")),))]
    written = save_result("sr", write_sr(ct, findings, context), tmp_path / "out")
    ds = dcmread(written.path, stop_before_pixels=True)
    assert (written.sop_instance_uid, written.sop_class_uid, written.series_instance_uid) == (
        ds.SOPInstanceUID, ds.SOPClassUID, ds.SeriesInstanceUID)
    assert written.path.name == f"{ds.SOPInstanceUID}.dcm"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [written.path.name]
    out = OutputFile.of(written)
    assert (out.kind, out.path, out.sop_instance_uid, out.sop_class_uid, out.series_instance_uid) == (
        "sr", written.path, ds.SOPInstanceUID, ds.SOPClassUID, ds.SeriesInstanceUID)
