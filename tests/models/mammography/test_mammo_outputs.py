"""Result objects of the mammography pipeline at the right place: GSPS marks over the lesions of the source image.

An oracle network (the phantom's own truth maps as probabilities) isolates the geometry: phantom at
0.2 mm written with magnification 1.1 (Imager Pixel Spacing 0.22 mm), read back, flipped, resampled
to 0.25 mm, analysed, and the marks mapped back to the stored image.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.mammography.analysis import analyse_exam, analyse_view
from models.mammography.density import MAPPING as DENSITY_MAPPING
from models.mammography.detection import Calibration, Platt
from models.mammography.pipeline import AnalysedView, select_views
from models.mammography.preprocess import resample
from models.mammography.report import context_of, write_results
from models.mammography.views import read_view
from models.pipeline import PipelineRequest
from peers import dciodvfy_errors
from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam

CALIBRATION = Calibration({"mass": 0.0, "calcification_cluster": 0.0}, {"mass": Platt(), "calcification_cluster": Platt()},
                          tuple(np.linspace(-4, 4, 9)), 12.0)


def _oracle(pv, spacing_mm: float):
    maps = np.stack([pv.dense, pv.mass, pv.calc]).astype(np.float32)
    truth = np.stack([resample(m, spacing_mm) for m in maps])

    def predict(x: np.ndarray) -> np.ndarray:
        out = np.full((1, 3, *x.shape[2:]), -6.0, dtype=np.float32)
        out[0, :, : truth.shape[1], : truth.shape[2]] = np.where(truth > 0.5, 2.2, -6.0)
        return out

    return predict


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    exam = make_exam(21, PhantomConfig(spacing_mm=0.2, lesion_rate=1.0, max_lesions_per_breast=2))
    folder = tmp_path_factory.mktemp("mg")
    files = write_exam(exam, folder / "in", MgStudyOptions(magnification=1.1))
    return exam, files, folder


@pytest.fixture(scope="module")
def analysed(study):
    exam, files, folder = study
    selection = select_views({"s": tuple(files)})
    views = {}
    for key, path in selection.files.items():
        source = read_view(path)
        assert source.spacing_mm == pytest.approx(0.2)
        working = resample(source.image, source.spacing_mm)
        analysis = analyse_view(working, key[0], key[1], source.window, _oracle(exam.views[key], 0.2))
        views[key] = AnalysedView(source, working.shape, analysis)
    return views, analyse_exam({k: a.analysis for k, a in views.items()}, CALIBRATION)


@pytest.fixture(scope="module")
def written(study, analysed, tmp_path_factory):
    exam, files, _ = study
    views, result = analysed
    out = tmp_path_factory.mktemp("out")
    request = PipelineRequest(study_uid=str(dcmread(files[0]).StudyInstanceUID), series={}, out_dir=out,
                              uid_root="2.25")
    context = context_of(request, "mammography", "1.0.0+model0", "test")
    return write_results(request, context, views, result)


def _truth_stored(path: Path, lesion) -> tuple[float, float]:
    view = read_view(path)
    return view.orientation.point_to_stored(lesion.centre_rc[0] + 0.5, lesion.centre_rc[1] + 0.5, view.image.shape)


def _inside(points: np.ndarray, r: float, c: float) -> bool:
    return bool(points[:, 0].min() <= c <= points[:, 0].max() and points[:, 1].min() <= r <= points[:, 1].max())


def test_oracle_findings_are_all_found_and_linked(study, analysed) -> None:
    exam, _, _ = study
    _, result = analysed
    n_truth = sum(len(v.lesions) for v in exam.views.values())
    assert n_truth >= 4 and len([r for f in result.findings for r in f.regions.values()]) == n_truth
    assert all(f.linked for f in result.findings)  # each phantom lesion is on both views: linked by nipple distance


def test_every_object_is_valid_dicom(written) -> None:
    assert [o.kind for o in written] == ["sr", "gsps", "gsps", "gsps", "gsps", "sc"]
    for out in written:
        assert dciodvfy_errors(out.path) == [], out.kind
    sr = written[0].path
    dump = subprocess.run(["dsrdump", str(sr)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "Breast composition" in dump.stdout
    texts = [str(el.value) for el in dcmread(sr).iterall() if el.VR in ("UT", "ST", "LT", "LO")]
    assert f"density_mapping={DENSITY_MAPPING}" in texts  # the percent-to-category mapping is shown in the SR


def test_gsps_marks_land_on_the_lesions_of_the_stored_images(study, written) -> None:
    exam, files, _ = study
    by_image = {}
    for out in written:
        if out.kind != "gsps":
            continue
        ds = dcmread(out.path)
        ref = ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
        by_image[ref] = [np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
                         for a in ds.GraphicAnnotationSequence for g in a.get("GraphicObjectSequence", [])]
    for path in files:
        src = dcmread(path, stop_before_pixels=True)
        key = (src.ImageLaterality, src.ViewPosition)
        rects = by_image[src.SOPInstanceUID]
        assert len(rects) == len(exam.views[key].lesions)
        for lesion in exam.views[key].lesions:
            assert any(_inside(rect, *_truth_stored(path, lesion)) for rect in rects), (key, lesion.kind)


def test_sr_regions_density_and_exam_score(study, analysed, written) -> None:
    exam, files, _ = study
    _, result = analysed
    sr = hd.sr.srread(written[0].path)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == sum(len(v.lesions) for v in exam.views.values())
    paths = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in files}
    for group in groups:
        region = group.roi
        uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        src = dcmread(paths[uid], stop_before_pixels=True)
        lesions = exam.views[(src.ImageLaterality, src.ViewPosition)].lesions
        points = np.asarray(region.GraphicData, dtype=float).reshape(-1, 2)
        assert any(_inside(points, *_truth_stored(paths[uid], lesion)) for lesion in lesions)
    density = {str(g.tracking_identifier): g for g in sr.content.get_image_measurement_groups()}
    assert {"density-L", "density-R", "exam"} <= set(density)
    for side in ("L", "R"):
        evaluation = density[f"density-{side}"].get_qualitative_evaluations()[0]
        expected = {"a": "129716005", "b": "129717001", "c": "129718006", "d": "129719003"}[
            exam.breast_category[side]]
        assert evaluation.value.value == expected  # the oracle's dense map is the truth: same category


def test_summary_capture_shows_the_marks(study, written) -> None:
    sc = dcmread(written[-1].path)
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and sc.BurnedInAnnotation == "YES"
    pixels = sc.pixel_array
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    cyan = (pixels[..., 0] < 120) & (pixels[..., 1] > 180) & (pixels[..., 2] > 200)
    exam, _, _ = study
    kinds = {t.kind for v in exam.views.values() for t in v.lesions}
    assert red[60:].any() == ("mass" in kinds) and cyan[60:].any() == ("calcification_cluster" in kinds)
