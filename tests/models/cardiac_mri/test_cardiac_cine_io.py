"""Cine reading for the measures: the gap comes from the slice positions, HR/BSA/sex from the header,
irregular stacks are refused; the summary page shows the contours."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from models.cardiac_mri.cine_io import choose_series, load_stack, patient_facts
from models.cardiac_mri.findings import CardiacFindings
from models.cardiac_mri.function import bsa_mosteller_m2, cardiac_function, volume_curve_ml
from models.cardiac_mri.pipeline import masks_of
from models.cardiac_mri.summary import LABEL_COLOURS, heart_box, render_summary
from models.errors import NoSuitableSeries
from training.cardiac_mri.dicom import write_series
from training.cardiac_mri.phantom import make_params, render_all


@pytest.fixture(scope="module")
def cine(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, np.ndarray, np.ndarray, list[Path]]:
    params = make_params(1)  # 8 mm slices with a 1 mm gap
    images, labels = render_all(params)
    files = write_series(params, images, tmp_path_factory.mktemp("cine"))
    return params, images, labels, files


def test_disc_geometry_gap_from_positions(cine) -> None:
    params, images, _, files = cine
    stack = load_stack(tuple(files))
    assert stack.images.shape == images.shape
    assert stack.geometry.slice_thickness_mm == pytest.approx(params.thickness_mm)
    assert stack.geometry.gap_mm == pytest.approx(params.gap_mm, abs=1e-3)
    assert stack.geometry.pixel_spacing_mm == pytest.approx((params.pixel_spacing_mm,) * 2, abs=1e-5)
    assert np.array_equal(stack.images[3, 2], np.round(images[3, 2]))  # phase 3, slice 2 (base -> apex)
    assert stack.trigger_times_ms == pytest.approx(tuple(params.trigger_times_ms), abs=0.06)


def test_patient_facts_and_heart_rate_fallback(cine) -> None:
    params, _, _, files = cine
    hr, bsa, sex = patient_facts(pydicom.dcmread(files[0], stop_before_pixels=True))
    assert hr == round(params.heart_rate_bpm) and sex == params.sex
    assert bsa == pytest.approx(bsa_mosteller_m2(round(params.height_cm) / 1.0, params.weight_kg), rel=0.01)
    ds = Dataset()
    ds.NominalInterval, ds.PatientSex = 800, "O"
    assert patient_facts(ds) == (75.0, None, None)


def test_patient_size_in_centimetres_gives_no_bsa(cine, caplog: pytest.LogCaptureFixture) -> None:
    """DICOM Patient's Size is in metres: 175 (cm) is refused, not read as 175 m (a BSA of ~18 m²)."""
    _, _, _, files = cine
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    ds.PatientSize = 175
    with caplog.at_level("WARNING", logger="models.cardiac_mri.cine_io"):
        _, bsa, _ = patient_facts(ds)
    assert bsa is None and "not a height in metres" in caplog.text and "175" not in caplog.text
    ds.PatientSize = 1.75
    assert patient_facts(ds)[1] == pytest.approx(bsa_mosteller_m2(175.0, float(ds.PatientWeight)))


def test_missing_slice_location_is_refused(cine, tmp_path: Path) -> None:
    params, _, _, files = cine
    kept = [f for f in files if not f.name.startswith("mr_03_")]  # drop every phase of location 3
    with pytest.raises(NoSuitableSeries, match="spacing varies"):
        load_stack(tuple(kept))


def test_choose_series_needs_enough_images(cine) -> None:
    _, _, _, files = cine
    assert choose_series({"a": tuple(files)}, {"Modality": "^MR$"}, "study").files
    with pytest.raises(NoSuitableSeries):
        choose_series({"a": tuple(files[:10])}, {"Modality": "^MR$"}, "study")
    with pytest.raises(NoSuitableSeries):
        choose_series({"a": tuple(files)}, {"Modality": "^CT$"}, "study")


def test_summary_page_has_contours_and_curve(cine) -> None:
    params, images, labels, _ = cine
    masks = masks_of(labels)
    function = cardiac_function(masks, params.geometry)
    findings = CardiacFindings(function, labels, volume_curve_ml(masks.lv_pool, params.geometry),
                               volume_curve_ml(masks.rv_pool, params.geometry), tuple(params.trigger_times_ms),
                               params.sex, "test")
    page = render_summary(images, findings)
    assert page.ndim == 3 and page.shape[2] == 3 and page.dtype == np.uint8
    colours = {tuple(c) for c in page.reshape(-1, 3)[::7]}
    assert all(c in colours for c in LABEL_COLOURS.values())
    rows, cols = heart_box(labels[function.lv.ed_phase])
    assert rows.stop - rows.start < labels.shape[2] and (labels[0][:, rows, cols] > 0).any()
