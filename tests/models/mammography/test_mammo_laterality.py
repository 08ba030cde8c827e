"""A mark is never placed on the wrong breast (issue 28): single-sided findings, flipped and relabelled views.

The exam has masses in the LEFT breast only (``PhantomConfig.lesion_sides``). The network is a content oracle:
it recognises which phantom view it is given from the pixels alone (never from a label) and answers with that
view's truth maps, so a label the pipeline gets wrong shows up as a mark on the other breast. Each variant of
the study (as stored, flipped horizontally with Patient Orientation or Field of View Horizontal Flip changed,
stored upside down, laterality only in the series Laterality or only in a code) must give marks on the left
images only, at the lesions' pixels, in left-breast SR groups. Labels that contradict each other or the image
refuse the study (:class:`LabelConflict`); an image without laterality is skipped with the reason.
"""
from __future__ import annotations

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from models.errors import NoSuitableSeries
from models.mammography.analysis import analyse_exam, analyse_view
from models.mammography.detection import Calibration, Platt
from models.mammography.orientation import LabelConflict, chest_wall_side, stored_patient_orientation, view_orientation
from models.mammography.pipeline import AnalysedView, load_sources, select_views, summary_of
from models.mammography.preprocess import normalise, resample
from models.mammography.report import context_of, write_results
from models.pipeline import PipelineRequest
from training.mammography.dicom import STORED_SCALE, write_exam
from training.mammography.phantom import PHANTOM_WINDOW, PhantomConfig, make_exam

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from peers import dciodvfy_errors

CALIBRATION = Calibration({"mass": 0.0, "calcification_cluster": 0.0},
                          {"mass": Platt(), "calcification_cluster": Platt()}, tuple(np.linspace(-4, 4, 9)), 12.0)
LEFT_BREAST, RIGHT_BREAST = "80248007", "73056007"
SEED = 7


@pytest.fixture(scope="module")
def exam():
    exam = make_exam(SEED, PhantomConfig(spacing_mm=0.25, lesion_rate=1.0, mass_fraction=1.0, lesion_sides=("L",)))
    assert all(exam.views[("L", v)].lesions for v in ("CC", "MLO"))
    assert not any(exam.views[("R", v)].lesions for v in ("CC", "MLO"))
    return exam


@pytest.fixture(scope="module")
def stored(exam, tmp_path_factory) -> dict[tuple[str, str], Path]:
    paths = write_exam(exam, tmp_path_factory.mktemp("mg"))
    return {(dcmread(p).ImageLaterality, dcmread(p).ViewPosition): p for p in paths}


def content_oracle(exam):
    """A predict callable that knows the phantom views by their pixels only."""
    window = (PHANTOM_WINDOW[0] * STORED_SCALE, PHANTOM_WINDOW[1] * STORED_SCALE)
    known = []
    for pv in exam.views.values():
        image = normalise(np.clip(np.round(pv.image * STORED_SCALE), 0, 4095), *window)
        truth = np.stack([resample(m.astype(np.float32), pv.spacing_mm) for m in (pv.dense, pv.mass, pv.calc)])
        known.append((image, truth))

    def predict(x: np.ndarray) -> np.ndarray:
        errors = [float(np.abs(x[0, 0, : im.shape[0], : im.shape[1]] - im).mean()) if
                  x.shape[2] >= im.shape[0] and x.shape[3] >= im.shape[1] else np.inf for im, _ in known]
        best = int(np.argmin(errors))
        if errors[best] > 1e-4:
            raise AssertionError(f"oracle: the image is none of the phantom's views (error {errors[best]:.3g})")
        truth = known[best][1]
        out = np.full((1, 3, *x.shape[2:]), -6.0, dtype=np.float32)
        out[0, :, : truth.shape[1], : truth.shape[2]] = np.where(truth > 0.5, 2.2, -6.0)
        return out

    return predict


def run_study(files: list[Path], exam, out: Path):
    """The pipeline's load stage, the analysis with the content oracle and the writers."""
    selection, sources = load_sources({"s": tuple(files)})
    predict = content_oracle(exam)
    analysed = {}
    for key, source in sources.items():
        working = resample(source.image, source.spacing_mm)
        analysed[key] = AnalysedView(source, working.shape,
                                     analyse_view(working, key[0], key[1], source.window, predict))
    result = analyse_exam({k: a.analysis for k, a in analysed.items()}, CALIBRATION)
    out.mkdir(parents=True, exist_ok=True)
    request = PipelineRequest(study_uid=str(dcmread(files[0]).StudyInstanceUID), series={}, out_dir=out,
                              uid_root="2.25")
    written = write_results(request, context_of(request, "mammography", "1.0.0+model0", "test"), analysed, result)
    return selection, result, written


def _resave(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _reverse(direction: str) -> str:
    return "".join({"A": "P", "P": "A", "L": "R", "R": "L", "F": "H", "H": "F"}.get(ch, ch) for ch in direction)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def make_variant(stored: dict[tuple[str, str], Path], name: str, folder: Path) -> list[Path]:
    """The study changed as *name* says, written into *folder*."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (side, view), path in stored.items():
        ds = dcmread(path)
        rows_dir, cols_dir = ds.PatientOrientation
        if name in ("flipped", "fov_flip"):
            ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
            ds.PatientOrientation = [_reverse(rows_dir), cols_dir]
            if name == "fov_flip":
                ds.FieldOfViewHorizontalFlip = "YES"
        elif name == "upside_down":
            ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
            ds.PatientOrientation = [rows_dir, _reverse(cols_dir)]
        elif name == "series_laterality":
            del ds.ImageLaterality
            ds.Laterality = side
        elif name == "empty_image_laterality":
            ds.ImageLaterality = ""
            ds.Laterality = side
        elif name == "code_only":
            del ds.ImageLaterality
            value, meaning = (LEFT_BREAST, "Left breast") if side == "L" else (RIGHT_BREAST, "Right breast")
            ds.AnatomicRegionSequence = Sequence([_code(value, "SCT", meaning)])
        elif name == "view_code_only":  # a side modifier (retired SRT code) on the view code, nothing else
            del ds.ImageLaterality
            ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence(
                [_code("G-A101", "SRT", "Left") if side == "L" else _code("G-A100", "SRT", "Right")])
        paths.append(_resave(ds, folder / path.name))
    return paths


def _expected_stored(exam, key, name: str, shape: tuple[int, int]) -> list[tuple[float, float]]:
    """Truth lesion centres of view *key* in the variant's stored pixels (continuous coordinates), computed from
    how the phantom was written and changed, not through the pipeline."""
    writer = view_orientation(*key, stored_patient_orientation(*key))
    points = []
    for lesion in exam.views[key].lesions:
        r, c = writer.point_to_stored(lesion.centre_rc[0] + 0.5, lesion.centre_rc[1] + 0.5, shape)
        if name in ("flipped", "fov_flip"):
            c = shape[1] - c
        elif name == "upside_down":
            r = shape[0] - r
        points.append((r, c))
    return points


def _inside(points: np.ndarray, r: float, c: float) -> bool:
    return bool(points[:, 0].min() <= c <= points[:, 0].max() and points[:, 1].min() <= r <= points[:, 1].max())


VARIANTS = ["stored", "flipped", "fov_flip", "upside_down", "series_laterality", "empty_image_laterality", "code_only",
            "view_code_only"]


@pytest.mark.parametrize("name", VARIANTS)
def test_single_sided_marks_stay_on_their_breast(exam, stored, name, tmp_path) -> None:
    files = make_variant(stored, name, tmp_path / "in") if name != "stored" else list(stored.values())
    selection, result, written = run_study(files, exam, tmp_path / "out")
    assert sorted(selection.files) == [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    assert result.findings and {f.laterality for f in result.findings} == {"L"}
    assert {f["laterality"] for f in summary_of(result, selection, 0)["findings"]} == {"L"}
    source = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in files}
    marked = set()
    for out in written:
        if out.kind != "gsps":
            continue
        ds = dcmread(out.path)
        ref = source[ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID]
        key = next(k for k, p in stored.items() if p.name == ref.name)
        rects = [np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
                 for a in ds.GraphicAnnotationSequence for g in a.get("GraphicObjectSequence", [])]
        if key[0] == "R":
            assert rects == [], (name, key)  # nothing drawn on the breast without a finding
            continue
        marked.add(key)
        image = dcmread(ref)
        for r, c in _expected_stored(exam, key, name, (int(image.Rows), int(image.Columns))):
            assert any(_inside(rect, r, c) for rect in rects), (name, key, r, c)
    assert marked == {("L", "CC"), ("L", "MLO")}
    sr = hd.sr.srread(written[0].path)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == sum(len(exam.views[("L", v)].lesions) for v in ("CC", "MLO"))
    for group in groups:
        assert str(group.tracking_identifier).split("-")[1].startswith("L")
        assert [s.value.value for s in group.finding_sites] == [LEFT_BREAST]
        uid = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        ref = dcmread(source[uid], stop_before_pixels=True)
        assert ref.get("ImageLaterality") in ("L", "", None) and source[uid].name.startswith("mg_L")


def test_outputs_of_a_flipped_study_are_valid(exam, stored, tmp_path) -> None:
    files = make_variant(stored, "fov_flip", tmp_path / "in")
    _, _, written = run_study(files, exam, tmp_path / "out")
    for out in written:
        assert dciodvfy_errors(out.path) == [], out.kind


def _one_changed(stored, key, tmp_path, **changes: object) -> list[Path]:
    ds = dcmread(stored[key])
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    changed = _resave(ds, tmp_path / "changed.dcm")
    return [changed, *(p for k, p in stored.items() if k != key)]


def test_laterality_tags_that_disagree_refuse_the_study(stored, tmp_path) -> None:
    files = _one_changed(stored, ("L", "CC"), tmp_path, Laterality="R")
    with pytest.raises(LabelConflict, match="ImageLaterality L, Laterality R"):
        select_views({"s": tuple(files)})


def test_a_breast_code_of_the_other_side_refuses_the_study(stored, tmp_path) -> None:
    files = _one_changed(stored, ("R", "MLO"), tmp_path,
                         AnatomicRegionSequence=Sequence([_code(LEFT_BREAST, "SCT", "Left breast")]))
    with pytest.raises(LabelConflict, match="AnatomicRegionSequence L, ImageLaterality R"):
        select_views({"s": tuple(files)})


def test_view_position_and_view_code_that_disagree_refuse_the_study(stored, tmp_path) -> None:
    files = _one_changed(stored, ("L", "CC"), tmp_path, ViewPosition="MLO")
    with pytest.raises(LabelConflict, match="View Position MLO and the View Code Sequence"):
        select_views({"s": tuple(files)})


def test_left_mlo_labelled_right_is_refused_by_its_orientation(stored, tmp_path) -> None:
    # the right MLO is dropped, the left one relabelled R with its own (left) Patient Orientation A\FR
    ds = dcmread(stored[("L", "MLO")])
    ds.ImageLaterality = "R"
    files = [_resave(ds, tmp_path / "relabelled.dcm"), stored[("L", "CC")], stored[("R", "CC")]]
    with pytest.raises(LabelConflict, match="that of a L MLO"):
        load_sources({"s": tuple(files)})


@pytest.mark.parametrize("key", [("L", "CC"), ("L", "MLO")])
def test_left_image_labelled_right_with_right_orientation_is_refused_by_its_content(stored, key, tmp_path) -> None:
    # a modality told "right" writes a right breast's Patient Orientation (chest wall on the right edge),
    # but the pixels are a left breast stored with the chest wall on the left
    ds = dcmread(stored[key])
    ds.ImageLaterality = "R"
    ds.PatientOrientation = list(stored_patient_orientation("R", key[1]))
    files = [_resave(ds, tmp_path / "relabelled.dcm"), *(p for k, p in stored.items() if k[0] == "L" and k != key)]
    with pytest.raises(LabelConflict, match="shows it on the left edge"):
        load_sources({"s": tuple(files)})


def test_flipped_pixels_with_unchanged_orientation_are_refused(stored, tmp_path) -> None:
    ds = dcmread(stored[("R", "CC")])
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
    ds.FieldOfViewHorizontalFlip = "YES"  # Patient Orientation still P\L
    files = [_resave(ds, tmp_path / "flipped.dcm"), *(p for k, p in stored.items() if k != ("R", "CC"))]
    with pytest.raises(LabelConflict, match="chest wall on the right edge, but the image shows it on the left"):
        load_sources({"s": tuple(files)})


def test_an_image_without_laterality_is_skipped_with_the_reason(exam, stored, tmp_path) -> None:
    files = _one_changed(stored, ("L", "CC"), tmp_path, ImageLaterality=None)
    selection, result, written = run_study(files, exam, tmp_path / "out")
    assert sorted(selection.files) == [("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    assert any("no laterality" in s for s in selection.skipped)
    assert {f.laterality for f in result.findings} == {"L"} and all(set(f.regions) == {"MLO"} for f in result.findings)
    assert sum(o.kind == "gsps" for o in written) == 3  # nothing written on the unlabelled image


def test_a_study_without_any_laterality_is_refused(stored, tmp_path) -> None:
    files = []
    for key, path in stored.items():
        ds = dcmread(path)
        del ds.ImageLaterality
        files.append(_resave(ds, tmp_path / path.name))
    with pytest.raises(NoSuitableSeries, match="no laterality"):
        select_views({"s": tuple(files)})


@pytest.mark.parametrize(("orientation", "laterality", "ok"), [
    (("A", "FR"), "L", True), (("P", "FL"), "R", True), (("A", "HL"), "L", True), (("P", "HR"), "R", True),
    (("A", "FR"), "R", False), (("P", "FL"), "L", False), (("A", "HL"), "R", False), (("A", "F"), "R", True),
])
def test_mlo_orientation_names_the_breast(orientation, laterality, ok) -> None:
    if ok:
        view_orientation(laterality, "MLO", orientation)
    else:
        with pytest.raises(LabelConflict, match="MLO"):
            view_orientation(laterality, "MLO", orientation)


def test_chest_wall_side_from_content(exam) -> None:
    image = exam.views[("L", "CC")].image  # canonical: chest wall on the left
    assert chest_wall_side(image) == "left" and chest_wall_side(image[:, ::-1]) == "right"
    assert chest_wall_side(np.zeros((50, 40))) is None  # nothing to say
    both = np.zeros((50, 40))
    both[:, :3] = both[:, -3:] = 1.0
    assert chest_wall_side(both) is None  # tissue on both edges: not clear, the orientation stands


def _gsps_rects(written, files) -> dict[str, list[np.ndarray]]:
    names = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.name for p in files}
    out = {}
    for f in written:
        ds = dcmread(f.path)
        if ds.Modality == "PR":
            ref = ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
            out[names[ref]] = sorted((np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
                                      for a in ds.GraphicAnnotationSequence for g in a.get("GraphicObjectSequence", [])),
                                     key=lambda p: tuple(p.min(axis=0)))
    return out


@pytest.mark.slow
def test_shipped_model_marks_the_same_breast_and_pixels_when_flipped(stored, tmp_path) -> None:
    """The service path with the shipped network: the flipped study gives the same findings, mirrored."""
    from models.mammography.pipeline import MammographyPipeline
    from models.runtime import RuntimeSettings
    from models.runtime.factory import make_runtime

    repo = Path(__file__).resolve().parents[3] / "triton_repo"
    pipeline = MammographyPipeline(make_runtime(RuntimeSettings(model_repository=repo, device="cpu")))
    runs = {}
    for name in ("stored", "fov_flip"):
        files = list(stored.values()) if name == "stored" else make_variant(stored, name, tmp_path / name)
        out = tmp_path / f"out-{name}"
        out.mkdir()
        request = PipelineRequest(str(dcmread(files[0]).StudyInstanceUID), {"s": tuple(files)}, out, "2.25")
        result = pipeline.run(request)
        runs[name] = (result.summary["findings"], _gsps_rects(result.files, files))
    (found, rects), (found_flipped, rects_flipped) = runs["stored"], runs["fov_flip"]
    assert found == found_flipped and found and {f["laterality"] for f in found} == {"L"}
    columns = {p.name: int(dcmread(p, stop_before_pixels=True).Columns) for p in stored.values()}
    for name, boxes in rects.items():
        mirrored = sorted((np.column_stack([columns[name] - b[:, 0], b[:, 1]]) for b in rects_flipped[name]),
                          key=lambda p: tuple(p.min(axis=0)))
        extent = [np.r_[a.min(axis=0), a.max(axis=0)] for a in boxes]
        extent_mirrored = [np.r_[b.min(axis=0), b.max(axis=0)] for b in mirrored]
        assert len(extent) == len(extent_mirrored) and all(
            np.allclose(a, b, atol=1e-3) for a, b in zip(extent, extent_mirrored)), name
