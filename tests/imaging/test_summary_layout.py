"""Every pipeline's summary image (Secondary Capture) and PDF, from a phantom run with the shipped models,
rendered to PNG (tests/artifacts/ or $AIWS_TEST_ARTIFACTS, for review) and checked without OCR: every
text line inside the image by the renderer's own font metrics, nothing drawn into the right edge, each
key image's legend listing exactly the findings marked on it (and each of those marked where its ring
is), human units and one precision in the text, no internal ids, formatted dates, the key images in the
PDF, and one algorithm-version format in every output."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

import aiws.pipelines.echo_summary as echo_module
import imaging.capture as capture
import models.cardiac_mri.summary as cardiac_summary
import models.mammography.summary as mammo_summary
from aiws.pipelines.echo_summary import EchoSummary
from models.cardiac_mri.pipeline import CardiacFunctionPipeline
from models.coronary_ct.pipeline import CoronaryCalciumPipeline
from models.lung_nodules.pipeline import LungNodulePipeline
from models.mammography.pipeline import MammographyPipeline
from models.pipeline import PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from peers import have_tool
from summary_runs import (
    REPO,
    Run,
    artifact_dir,
    by_kind,
    edge_rows_with_ink,
    pdf_bytes,
    pdf_pages,
    pdf_words,
    recording,
    save_png,
    sc_pixels,
    text_overflow,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_tool("pdftoppm"), reason="poppler-utils missing")]

#: One version format: "<software version> model <model> v<N>", or the software version alone.
VERSION = re.compile(r"^\d+\.\d+\.\d+( model [a-z0-9_]+ v\d+)?$")
#: Text a reader must not see: UCUM codes, unformatted units, internal tracking ids.
FORBIDDEN = re.compile(r"mm3|mm2|ml/m2|\{|\}|\[nodule-|nodule-\d|calcium-(LM|LAD|LCx|RCA|total)|lv-function")


def _request(files: list[Path], out: Path) -> PipelineRequest:
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    out.mkdir(parents=True, exist_ok=True)
    return PipelineRequest(study_uid, {"s": tuple(files)}, out, "2.25")


def _runtime():  # type: ignore[no-untyped-def]
    return make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))


@pytest.fixture(scope="module")
def lung(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from training.ct_dicom import CtSeriesInfo, write_ct_series
    from training.lung_nodules.phantom import PhantomConfig, generate_phantom

    root = tmp_path_factory.mktemp("lung")
    phantom = generate_phantom(7, PhantomConfig(pixel_mm=(0.8, 0.8), slice_mm=(1.25, 1.25), nodules=(6, 6),
                                                diameter_mm=(6, 14), kind_weights=(0.4, 0.3, 0.1, 0.2),
                                                z_extent_mm=100.0))  # a slab: 6 nodules, more than 4 key images
    files = write_ct_series(phantom.hu.astype(np.float32), phantom.affine, root / "in",
                            CtSeriesInfo(seed_text="layout", study_date="20260110"))
    run = Run("lung_nodules", {})
    with pytest.MonkeyPatch.context() as mp:
        recording(mp, capture, "render_key_images", run.layouts)
        result = LungNodulePipeline(_runtime()).run(_request(files, root / "out"))
    run.files = by_kind(result.files)
    return run


@pytest.fixture(scope="module")
def coronary(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from training.coronary_ct.dicom import write_series
    from training.coronary_ct.phantom import make_phantom

    root = tmp_path_factory.mktemp("coronary")
    files = write_series(make_phantom(10003), root / "in")
    run = Run("coronary_ct", {})
    with pytest.MonkeyPatch.context() as mp:
        recording(mp, capture, "render_key_images", run.layouts)
        result = CoronaryCalciumPipeline(_runtime()).run(_request(files, root / "out"))
    run.files = by_kind(result.files)
    return run


@pytest.fixture(scope="module")
def cardiac(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from training.cardiac_mri.dicom import write_series
    from training.cardiac_mri.phantom import make_params, render_all

    root = tmp_path_factory.mktemp("cardiac")
    params = make_params(10002)
    images, _ = render_all(params)
    files = write_series(params, images, root / "in")
    run = Run("cardiac_mri", {})
    with pytest.MonkeyPatch.context() as mp:
        recording(mp, cardiac_summary, "render_layout", run.texts)
        result = CardiacFunctionPipeline(_runtime()).run(_request(files, root / "out"))
    run.files = by_kind(result.files)
    return run


@pytest.fixture(scope="module")
def mammography(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from training.mammography.dicom import write_exam
    from training.mammography.phantom import PhantomConfig, make_exam

    root = tmp_path_factory.mktemp("mammography")
    files = write_exam(make_exam(21, PhantomConfig(lesion_rate=1.0, max_lesions_per_breast=2)), root / "in")
    run = Run("mammography", {})
    with pytest.MonkeyPatch.context() as mp:
        recording(mp, mammo_summary, "render_layout", run.texts)
        result = MammographyPipeline(make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))).run(
            _request(files, root / "out"))
    run.files = by_kind(result.files)
    return run


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from factories import make_ct_series

    root = tmp_path_factory.mktemp("echo")
    files = make_ct_series(root / "in", n_slices=3)
    run = Run("echo_summary", {})
    with pytest.MonkeyPatch.context() as mp:
        recording(mp, echo_module, "render_layout", run.texts)
        result = EchoSummary().run(_request(files, root / "out"))
    run.files = by_kind(result.files)
    return run


RUNS = ["lung", "coronary", "cardiac", "mammography", "echo"]


@pytest.fixture(params=RUNS)
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def _page_texts(run: Run) -> list[tuple[np.ndarray, list]]:
    """(pixels as drawn, texts) of every summary image of *run*."""
    if run.layouts:
        return [(k.pixels, list(k.texts)) for images in run.layouts for k in images]
    return run.texts


def test_summary_images_are_written_as_drawn_and_kept_as_png(run: Run) -> None:
    folder = artifact_dir(run.name)
    written = [sc_pixels(p) for p in run.files["sc"]]
    for i, pixels in enumerate(written, start=1):
        save_png(pixels, folder / f"sc-{i}.png")
    drawn = [pixels for pixels, _ in _page_texts(run)][:len(written)]  # the first render is the capture's
    assert len(drawn) == len(written) >= 1
    for a, b in zip(drawn, written):
        assert np.array_equal(a, b)


def test_every_text_line_is_inside_the_image(run: Run) -> None:
    for pixels, texts in _page_texts(run):
        assert texts, "the renderer reports what it drew"
        assert text_overflow(texts, pixels.shape[1], pixels.shape[0]) == []


def test_nothing_is_drawn_into_the_right_edge(run: Run) -> None:
    for path in run.files["sc"]:
        assert edge_rows_with_ink(sc_pixels(path)) == [], path.name


def test_text_in_human_units_without_internal_ids(run: Run) -> None:
    words = [t.text for _, texts in _page_texts(run) for t in texts]
    assert [w for w in words if FORBIDDEN.search(w)] == []
    assert not any(re.search(r"\d\.\d{2,} mm\b", w) for w in words)  # diameters to 0.1 mm


def test_one_algorithm_version_format(run: Run) -> None:
    for kind, paths in run.files.items():
        for path in paths:
            ds = dcmread(path, stop_before_pixels=True)
            assert VERSION.match(str(ds.SoftwareVersions)), (kind, ds.SoftwareVersions)
            assert str(ds.SeriesDescription).startswith(f"AIWS {run.name} {ds.SoftwareVersions}"), kind


@pytest.mark.parametrize("name", ["lung", "coronary"])
def test_each_key_image_lists_exactly_the_findings_marked_on_it(name: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(name)
    images = run.layouts[0]
    marked_anywhere = {t for k in images for t in k.tracking_ids}
    for key, path in zip(images, run.files["sc"]):
        pixels = sc_pixels(path)
        numbers = dict(key.numbers)
        assert set(key.tracking_ids) <= set(key.listed_ids)  # every finding marked here is listed here ...
        assert not (set(key.listed_ids) - set(key.tracking_ids)) & marked_anywhere  # ... and no other marked one
        assert sorted(m[0] for m in key.markers) == sorted(key.tracking_ids)
        headings = [t.text for t in key.texts if re.match(r"^\d+\. ", t.text)]
        assert sorted(int(h.split(".")[0]) for h in headings) == sorted(numbers[t] for t in key.listed_ids)
        for tracking_id, x, y, ring in key.markers:
            angles = np.linspace(0, 2 * np.pi, 72, endpoint=False)[:, None]
            radii = ring + np.arange(-3.0, 1.5, 0.5)[None, :]  # the ring is drawn 2 px wide inwards
            xs = np.clip(np.round(x + radii * np.cos(angles)).astype(int), 0, pixels.shape[1] - 1)
            ys = np.clip(np.round(y + radii * np.sin(angles)).astype(int), 0, pixels.shape[0] - 1)
            yellow = np.all(np.abs(pixels[ys, xs].astype(int) - capture.MARKER_COLOUR) < 60, axis=-1).any(axis=1)
            inside = (xs[:, 0] < key.layout.image_x0 + key.layout.image_width) & (ys[:, 0] >= key.layout.image_y0)
            assert yellow[inside].mean() > 0.75, f"{tracking_id}: ring not found around ({x:.0f}, {y:.0f})"


def test_lung_pdf_reads_as_a_report(lung: Run) -> None:
    [path] = lung.files["pdf"]
    document = pdf_bytes(path)
    folder = artifact_dir("lung_nodules")
    pages = pdf_pages(document, folder, "report")
    assert pages
    sizes, words = pdf_words(document, folder, "report")
    margin = 18 * 72 / 25.4
    outside = [w for w in words if w["xMax"] > sizes[w["page"] - 1][0] - margin + 1 or w["xMin"] < margin - 1]
    assert outside == []
    text = " ".join(w["text"] for w in words)
    assert not FORBIDDEN.search(text), FORBIDDEN.search(text)
    assert re.search(r"Born: \d{4}-\d{2}-\d{2}", text) and re.search(r"Date: \d{4}-\d{2}-\d{2}", text)
    assert "mm³" in text and "Key image 1 of" in text
    n_key_images = len(lung.files["sc"])
    assert document.count(b"/Subtype /Image") == n_key_images  # every key image is in the report
    for number in range(1, len(lung.layouts[0][0].numbers) + 1):
        assert re.search(rf"(^| ){number}\. ", text), f"finding {number} missing from the PDF"
