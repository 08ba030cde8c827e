"""Golden images, one per summary layout: the generic key image (lung, coronary), the PDF's pages,
the cardiac page, the mammography hanging and the echo page, rendered from fixed inputs (synthetic
findings with long labels that must wrap, phantoms with their truth instead of a network) and compared
with the committed PNG at half (textured images: quarter) resolution with a tolerance
(see :func:`summary_runs.compare_golden`).
After an intended layout change: ``AIWS_UPDATE_GOLDEN=1`` once, then look at tests/imaging/golden/."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging.capture import render_key_images
from imaging.pdf import key_image_figures, render_pdf
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
from imaging.volume import load_volume
from imaging_helpers import ALTERED, LUNG, MM, NODULE, write_phantom
from peers import have_tool
from summary_runs import artifact_dir, compare_golden, pdf_pages, text_overflow

CONTEXT = ResultContext(uid_root="2.25", pipeline="lung_nodules", model_version="1.0.0 model lung_nodules v6",
                        manufacturer="AIWS test", algorithm=AlgorithmId("lung_nodules", "1.0.0 model lung_nodules v6",
                                                                        (("network", "lung_nodules v6"),)))
LOCAL = "99AIWS"
MM3, ONE = Code("mm3", "UCUM", "cubic millimeter"), Code("1", "UCUM", "no units")


def _findings() -> list[Finding]:
    long_reason = Code("R", LOCAL, "category 2: juxtapleural, smooth, oval, attached to the costal pleura, "
                                   "< 10 mm (Lung-RADS v2022 benign features all present)")
    return [
        Finding("nodule-1", NODULE, LUNG,
                (Measurement(Code("81827009", "SCT", "Diameter"), 12.44, MM,
                             derivation=Code("373098007", "SCT", "Mean")),
                 Measurement(Code("118565006", "SCT", "Volume"), 1047.6, MM3)),
                (QualitativeEvaluation(Code("LR", LOCAL, "Lung-RADS v2022 category"),
                                       Code("4A", LOCAL, "Lung-RADS 4A")),
                 QualitativeEvaluation(Code("RULE", LOCAL, "Rule applied"), long_reason)),
                segment_number=1, label="Solid nodule, right lung, mid zone (not a lobe), 12.4 mm, Lung-RADS 4A"),
        Finding("nodule-2", NODULE, LUNG, (Measurement(Code("81827009", "SCT", "Diameter"), 4.46, MM),),
                region=ImageRegion2D(3, Graphic.CIRCLE, ((30.0, 10.0), (30.0, 13.0))), label="Ground-glass nodule"),
        Finding("exam", Code("363679005", "SCT", "Imaging procedure"), None,
                (Measurement(Code("112058", "DCM", "Calcium score"), 60.123, ONE),
                 Measurement(Code("246206008", "SCT", "Number of lesions"), 3.0, Code("{lesions}", "UCUM", "lesions"))),
                label="Exam"),
    ]


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    phantom = write_phantom(tmp_path_factory.mktemp("ct") / "ct", (1, 0, 0, 0, 1, 0), shape=(12, 40, 48),
                            centre_index=(6.0, 14.0, 30.0), shuffle=False)
    volume = load_volume(phantom.paths)
    return volume, [Segment("Nodule 1", ALTERED, NODULE, volume.voxels > 500, "nodule-1", LUNG)]


def test_key_image_layout(ct) -> None:  # type: ignore[no-untyped-def]
    volume, segments = ct
    images = render_key_images(volume, _findings(), segments=segments, title="AIWS lung_nodules 1.0.0 model "
                               "lung_nodules v6", window=(0.0, 1000.0))
    assert len(images) == 2
    for i, key in enumerate(images, start=1):
        assert text_overflow(list(key.texts), key.pixels.shape[1], key.pixels.shape[0]) == []
        compare_golden(key.pixels, f"key_image_{i}")
    texts = [t.text for t in images[1].texts]
    assert "Diameter (mean): 12.4 mm" in texts and "Volume: 1048 mm³" in texts
    assert "Calcium score: 60.1" in texts and "Number of lesions: 3" in texts
    assert any(t.startswith("On the other key images: 2 (image ") for t in texts)


def test_a_crowded_key_image_lists_every_finding_marked_on_it(ct) -> None:  # type: ignore[no-untyped-def]
    volume, _ = ct
    diameter = Code("81827009", "SCT", "Diameter")
    findings = [Finding(f"n{i}", NODULE, LUNG, tuple(Measurement(diameter, 3.0 + j, MM) for j in range(3)),
                        region=ImageRegion2D(3, Graphic.CIRCLE, ((4.0 + 3 * i % 30, 5.0 + i), (4.0 + 3 * i % 30,
                                                                                            6.0 + i))),
                        label=f"Nodule with a label long enough to wrap onto a second line of the legend {i}")
                for i in range(20)]
    [key] = render_key_images(volume, findings, window=(0.0, 1000.0))
    texts = [t.text for t in key.texts]
    headings = [t for t in texts if re.match(r"^\d+\. ", t)]
    assert [int(h.split(".")[0]) for h in headings] == list(range(1, 21))  # all listed, in order
    assert sorted(key.listed_ids) == sorted(key.tracking_ids) and len(key.markers) == 20
    assert any(t.startswith("Measurements of ") for t in texts)  # details past the line budget: in the SR
    assert text_overflow(list(key.texts), key.pixels.shape[1], key.pixels.shape[0]) == []


@pytest.mark.skipif(not have_tool("pdftoppm"), reason="poppler-utils missing")
def test_pdf_layout(ct) -> None:  # type: ignore[no-untyped-def]
    volume, segments = ct
    header = volume.sources[0].header.copy()
    header.PatientName, header.PatientBirthDate, header.StudyDate = "Doe^Jane", "19600101", "20260110"
    figures = key_image_figures(volume, _findings(), segments=segments, window=(0.0, 1000.0))
    document = render_pdf(header, _findings(), CONTEXT, figures=figures, where={"nodule-1": "image 7"})
    pages = pdf_pages(document, artifact_dir("golden"), "pdf_layout", dpi=60)
    assert len(pages) == 2  # the findings and a key image, then the second key image
    for i, page in enumerate(pages, start=1):
        compare_golden(np.asarray(Image.open(page).convert("RGB")), f"pdf_page_{i}")
    assert b"Born: 1960-01-01" in document.replace(b"\xa0", b" ").replace(b"\\240", b" ")


def test_cardiac_page_layout() -> None:
    from models.cardiac_mri.findings import CardiacFindings
    from models.cardiac_mri.function import cardiac_function, volume_curve_ml
    from models.cardiac_mri.pipeline import masks_of
    from models.cardiac_mri.summary import render_layout
    from training.cardiac_mri.phantom import make_params, render_all

    params = make_params(1)
    images, labels = render_all(params)
    masks = masks_of(labels)
    findings = CardiacFindings(cardiac_function(masks, params.geometry), labels,
                               volume_curve_ml(masks.lv_pool, params.geometry),
                               volume_curve_ml(masks.rv_pool, params.geometry), tuple(params.trigger_times_ms),
                               params.sex, "cardiac_mri 1.0.0 model cardiac_cine_segmenter v1")
    page, texts = render_layout(images, findings, "AIWS cardiac_mri 1.0.0 model cardiac_cine_segmenter v1")
    assert text_overflow(texts, page.shape[1], page.shape[0]) == []
    compare_golden(page, "cardiac_page", factor=4)  # MR noise: a quarter keeps the golden file small


def test_mammography_layout(tmp_path: Path) -> None:
    from models.mammography.analysis import analyse_exam, analyse_view
    from models.mammography.detection import Calibration, Platt
    from models.mammography.pipeline import AnalysedView, select_views
    from models.mammography.preprocess import resample
    from models.mammography.report import stored_boxes
    from models.mammography.summary import render_layout
    from models.mammography.views import read_view
    from training.mammography.dicom import write_exam
    from training.mammography.phantom import PhantomConfig, make_exam

    exam = make_exam(21, PhantomConfig(spacing_mm=0.2, lesion_rate=1.0, max_lesions_per_breast=2))
    selection = select_views({"s": tuple(write_exam(exam, tmp_path / "mg"))})
    views = {}
    for key, path in selection.files.items():
        source = read_view(path)
        working = resample(source.image, source.spacing_mm)
        truth = np.stack([resample(m.astype(np.float32), 0.2) for m in
                          (exam.views[key].dense, exam.views[key].mass, exam.views[key].calc)])

        def oracle(x: np.ndarray, truth: np.ndarray = truth) -> np.ndarray:  # the phantom's truth as logits
            out = np.full((1, 3, *x.shape[2:]), -6.0, dtype=np.float32)
            out[0, :, :truth.shape[1], :truth.shape[2]] = np.where(truth > 0.5, 2.2, -6.0)
            return out

        views[key] = AnalysedView(source, working.shape, analyse_view(working, key[0], key[1], source.window, oracle))
    calibration = Calibration({"mass": 0.0, "calcification_cluster": 0.0},
                              {"mass": Platt(), "calcification_cluster": Platt()}, tuple(np.linspace(-4, 4, 9)), 12.0)
    result = analyse_exam({k: a.analysis for k, a in views.items()}, calibration)
    assert result.findings
    page, texts = render_layout(views, result, stored_boxes(views, result),
                                "AIWS mammography 1.0.0 model mammo_detector v1")
    assert text_overflow(texts, page.shape[1], page.shape[0]) == []
    compare_golden(page, "mammography", factor=4)


def test_echo_page_layout() -> None:
    from aiws.pipelines.echo_summary import render_layout

    lines = ["AIWS echo_summary 1.0.0 - computer-generated summary, not a diagnosis",
             "Received 2 series, 130 instances",
             "  #2 CT AXIAL 1.25 MM LUNG KERNEL WITH A SERIES DESCRIPTION FAR LONGER THAN ONE LINE OF THE PAGE: "
             "120 instances", "  #3 CT SCOUT: 10 instances"]
    page, texts = render_layout(lines)
    assert text_overflow(texts, page.shape[1], page.shape[0]) == []
    assert len(texts) == 5  # the long line wraps once
    compare_golden(page, "echo_page")
