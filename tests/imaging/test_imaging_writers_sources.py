"""Writers on the other sources: 2D mammography, one cine MR phase, an enhanced multi-frame CT; and the summary
capture's marker position."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from factories import make_mg_image, make_mr_cine_series
from imaging.capture import MARKER_COLOUR, key_image_layout, render_key_images, write_summary_capture
from imaging.cine import load_cine
from imaging.mammo import load_mammogram
from imaging.pdf import write_pdf_report
from imaging.provenance import save_dataset
from imaging.results import (
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
from imaging.volume import load_volume
from imaging_helpers import ALTERED, MM, NODULE, c_store, seg_centroid_lps, write_phantom
from peers import Orthanc, dciodvfy_errors

TID1500READER = str(Path(sys.executable).parent / "tid1500reader")
MASS = Code("4147007", "SCT", "Mass")
BREAST = Code("76752008", "SCT", "Breast")
BIRADS = Code("111037", "DCM", "BI-RADS Assessment Category")  # illustrative coded evaluation
SUSPICIOUS = Code("111038", "DCM", "Suspicious")
LV = Code("87878005", "SCT", "Left ventricle myocardium")
HEART = Code("80891009", "SCT", "Heart")
ANATOMY = Code("123037004", "SCT", "Anatomical Structure")


def _validate(paths: list[Path]) -> None:
    for path in paths:
        assert dciodvfy_errors(path) == [], path


def test_mammography_seg_sr_summary_pdf(tmp_path: Path, context: ResultContext, orthanc: Orthanc) -> None:
    mg = load_mammogram(make_mg_image(tmp_path / "mg.dcm", laterality="L", view="CC"))
    mask = np.zeros(mg.shape, dtype=bool)
    mask[60:80, 40:64] = True
    seg = write_seg(mg, [Segment("Mass 1", ALTERED, MASS, mask, "mass-1", BREAST)], context)
    findings = [
        Finding("mass-1", MASS, BREAST, (Measurement(Code("81827009", "SCT", "Diameter"), 2.4, MM),),
                (QualitativeEvaluation(BIRADS, SUSPICIOUS),), segment_number=1),
        Finding("calc-1", Code("129748009", "SCT", "Calcification"), BREAST, (),
                region=ImageRegion2D(0, Graphic.ELLIPSE, ((20.0, 90.0), (30.0, 90.0), (25.0, 87.0), (25.0, 93.0)))),
    ]
    paths = [save_dataset(seg, tmp_path / "out"),
             save_dataset(write_sr(mg, findings, context, seg=seg), tmp_path / "out"),
             *[save_dataset(sc, tmp_path / "out") for sc in write_summary_capture(mg, findings, context,
                                                                                  segments=[Segment("Mass 1", ALTERED, MASS, mask)])],
             save_dataset(write_pdf_report(mg, findings, context, segments=[Segment("Mass 1", ALTERED, MASS, mask)]),
                          tmp_path / "out")]
    _validate(paths)
    seg_back = hd.seg.segread(paths[0])
    assert seg_back.get_segment_description(1).segment_label == "Mass 1"
    frame = seg_back.get_frame(1)
    assert frame.shape == mg.shape and np.array_equal(np.argwhere(frame).min(axis=0), [60, 40])
    sr = hd.sr.srread(paths[1])
    planar = sr.content.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in planar] == ["mass-1", "calc-1"]
    assert planar[0].reference_type.meaning == "Referenced Segmentation Frame"
    image = [i for i in planar[0][0].ContentSequence if i.ValueType == "IMAGE"][0].ReferencedSOPSequence[0]
    assert (image.ReferencedSOPInstanceUID, image.ReferencedFrameNumber) == (seg.SOPInstanceUID, 1)
    assert planar[1].reference_type.meaning == "Image Region"
    run = subprocess.run([TID1500READER, "--inputDICOM", str(paths[1]), "--outputMetadata", str(tmp_path / "m.json")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    assert subprocess.run(["dsrdump", str(paths[1])], capture_output=True, timeout=60).returncode == 0
    assert dcmread(paths[2]).Laterality == "L"
    store = c_store(orthanc, paths)
    assert store.returncode == 0, store.stdout[-1500:] + store.stderr[-1500:]
    stored = {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.instances_of_study(mg.study_uid)}
    assert {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths} <= stored


def test_cine_phase_seg_lands_on_that_phase(tmp_path: Path, context: ResultContext) -> None:
    cine = load_cine(make_mr_cine_series(tmp_path / "cine", 4, 6, 32, 36))
    volume = cine.phase_volume(3)
    mask = volume.voxels > 400  # the bright disc of phase 3
    seg = write_seg(volume, [Segment("LV cavity", ANATOMY, LV, mask, "lv-ph3", HEART)], context)
    path = save_dataset(seg, tmp_path / "out")
    _validate([path])
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {s.sop_instance_uid for s in volume.sources}
    assert {float(s.header.TriggerTime) for s in volume.sources} == {cine.slices[k].times[3] for k in range(4)}
    expected = volume.index_to_lps(np.argwhere(mask).mean(axis=0)[np.newaxis])[0]
    assert np.linalg.norm(seg_centroid_lps(path) - expected) < 0.5


def test_enhanced_ct_seg_references_frames(tmp_path: Path, context: ResultContext) -> None:
    volume = load_volume([Path(get_testdata_file("eCT_Supplemental.dcm"))])
    mask = np.zeros(volume.shape, dtype=bool)
    mask[1, 200:260, 300:340] = True  # volume slice 1 is source frame 1 (z = -159)
    seg = write_seg(volume, [Segment("Region", ANATOMY, Code("12738006", "SCT", "Brain"), mask)], context)
    path = save_dataset(seg, tmp_path / "out")
    _validate([path])
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derivation.ReferencedFrameNumber == 1
    position = seg.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    assert float(position[2]) == pytest.approx(-159.0)


def test_summary_marker_at_the_finding_pixel(tmp_path: Path, context: ResultContext) -> None:
    phantom = write_phantom(tmp_path / "ct", (1, 0, 0, 0, 1, 0), shape=(6, 64, 80), centre_index=(2.0, 20.0, 50.0),
                            radius_mm=0.1)
    volume = load_volume(phantom.paths)
    row, col = 21.0, 53.0
    finding = Finding("n1", NODULE, None, (Measurement(Code("81827009", "SCT", "Diameter"), 3.0, MM),),
                      region=ImageRegion2D(4, Graphic.CIRCLE, ((row, col), (row, col + 2.0))))
    [sc] = write_summary_capture(volume, [finding], context)
    path = save_dataset(sc, tmp_path / "out")
    _validate([path])
    pixels = dcmread(path).pixel_array
    layout = key_image_layout(64, 80, 4)
    assert (sc.Rows, sc.Columns) == (layout.height, layout.width) and layout.scale == 6.0  # 80 px -> x6 >= 512
    x, y = layout.to_capture(row, col)
    yellow = np.all(pixels == MARKER_COLOUR, axis=-1)
    yellow[:, layout.legend_x0:] = False  # the legend title is yellow too
    ys, xs = np.nonzero(yellow)
    assert len(xs) > 50
    assert abs(xs.mean() - x) < 1.0 and abs(ys.mean() - y) < 1.0  # the ring is centred on the finding
    assert not yellow[int(y), int(x)]  # the finding itself stays visible


def test_key_images_pick_the_slices_with_findings(tmp_path: Path) -> None:
    phantom = write_phantom(tmp_path / "ct", (1, 0, 0, 0, 1, 0), shape=(10, 32, 32), centre_index=(7.0, 16.0, 16.0),
                            radius_mm=3.0)
    volume = load_volume(phantom.paths)
    mask = volume.voxels > 500
    findings = [Finding("a", NODULE, segment_number=1), Finding("b", NODULE),
                Finding("c", NODULE, region=ImageRegion2D(2, Graphic.POLYLINE, ((1, 1), (1, 5), (5, 5))))]
    images = render_key_images(volume, findings, segments=[Segment("a", ALTERED, NODULE, mask)])
    largest = int(np.argmax(mask.sum(axis=(1, 2))))
    assert [k.slice_index for k in images] == sorted([2, largest])
    assert images[-1].tracking_ids == ("a",)
