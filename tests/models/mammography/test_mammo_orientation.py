"""Canonical orientation of all four views from real DICOM files (pydicom), and the header rules around it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from models.errors import ModelError, NoSuitableSeries
from models.mammography.orientation import Orientation, stored_patient_orientation, view_orientation
from models.mammography.views import read_view
from training.mammography.dicom import STORED_SCALE, MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam

VIEWS = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]


@pytest.fixture(scope="module")
def exam():
    return make_exam(4, PhantomConfig(spacing_mm=1.0, lesion_rate=1.0))


@pytest.fixture(scope="module")
def files(exam, tmp_path_factory) -> dict[tuple[str, str], Path]:
    paths = write_exam(exam, tmp_path_factory.mktemp("mg"), MgStudyOptions(magnification=1.25))
    return {(dcmread(p).ImageLaterality, dcmread(p).ViewPosition): p for p in paths}


def _expected(exam, key) -> np.ndarray:
    return np.clip(np.round(exam.views[key].image * STORED_SCALE), 0, 4095)


def _resave(ds: Dataset, tmp_path: Path) -> Path:
    path = tmp_path / "changed.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("key", VIEWS)
def test_each_view_comes_back_canonical(exam, files, key) -> None:
    view = read_view(files[key])
    assert (view.laterality, view.view) == key
    assert view.spacing_mm == pytest.approx(1.0)  # 1.25 mm Imager Pixel Spacing / magnification 1.25
    np.testing.assert_array_equal(view.image, _expected(exam, key))
    # the stored file really is in display orientation: a right breast has its chest wall on the right
    stored = dcmread(files[key]).pixel_array.astype(float)
    assert (stored[:, -3:].mean() > stored[:, :3].mean()) == (key[0] == "R")
    assert view.orientation.flip_cols == (key[0] == "R") and not view.orientation.flip_rows
    assert view.image[:, :3].mean() > view.image[:, -3:].mean()  # chest wall at column 0 after the flip
    assert view.window == pytest.approx((1.3 * STORED_SCALE, 2.0 * STORED_SCALE))


@pytest.mark.parametrize("key", [("R", "MLO"), ("L", "MLO")])
def test_mlo_pectoral_is_top_left(exam, files, key) -> None:
    image = read_view(files[key]).image
    pectoral = exam.views[key].pectoral
    rows, cols = np.nonzero(pectoral)
    assert rows.mean() < image.shape[0] / 2 and cols.mean() < image.shape[1] / 4
    assert image[pectoral].mean() > image[exam.views[key].breast & ~pectoral].mean()


@pytest.mark.parametrize("key", VIEWS)
def test_laterality_and_view_from_the_other_attributes(files, key, tmp_path) -> None:
    ds = dcmread(files[key])
    ds.Laterality = ds.ImageLaterality
    del ds.ImageLaterality
    del ds.ViewPosition  # View Code Sequence alone
    view = read_view(_resave(ds, tmp_path))
    assert (view.laterality, view.view) == key


@pytest.mark.parametrize("key", VIEWS)
def test_without_patient_orientation_the_content_decides(exam, files, key, tmp_path) -> None:
    ds = dcmread(files[key])
    ds.PatientOrientation = ""
    view = read_view(_resave(ds, tmp_path))
    np.testing.assert_array_equal(view.image, _expected(exam, key))


@pytest.mark.parametrize("key", VIEWS)
def test_upside_down_storage_is_flipped_back(exam, files, key, tmp_path) -> None:
    ds = dcmread(files[key])
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
    rows_dir, cols_dir = stored_patient_orientation(*key)
    swap = {"L": "R", "R": "L", "F": "H"}  # every direction reverses: a left MLO "A\\FR" becomes "A\\HL"
    ds.PatientOrientation = [rows_dir, "".join(swap.get(ch, ch) for ch in cols_dir)]
    view = read_view(_resave(ds, tmp_path))
    assert view.orientation.flip_rows
    np.testing.assert_array_equal(view.image, _expected(exam, key))


def test_monochrome1_is_inverted_with_its_window(exam, files, tmp_path) -> None:
    ds = dcmread(files[("L", "CC")])
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = (4095 - ds.pixel_array).astype(np.uint16).tobytes()
    ds.WindowCenter = 4095 - float(ds.WindowCenter)
    view = read_view(_resave(ds, tmp_path))
    np.testing.assert_array_equal(view.image, _expected(exam, ("L", "CC")))
    assert view.window == pytest.approx((1.3 * STORED_SCALE, 2.0 * STORED_SCALE))


def test_point_mapping_matches_pixel_flips() -> None:
    image = np.zeros((6, 9))
    image[1, 2] = 1.0  # pixel centre (1.5, 2.5) in continuous coordinates
    for flips in [(False, False), (True, False), (False, True), (True, True)]:
        o = Orientation(*flips)
        stored = o.to_stored(image)
        r, c = o.point_to_stored(1.5, 2.5, image.shape)
        assert stored[int(r), int(c)] == 1.0
        assert o.point_to_stored(r, c, image.shape) == (1.5, 2.5)


def test_for_processing_is_rejected_with_the_reason(exam, tmp_path) -> None:
    path = write_exam(exam, tmp_path, MgStudyOptions(for_processing=True))[0]
    with pytest.raises(NoSuitableSeries, match="For Processing"):
        read_view(path)


def test_missing_laterality_is_an_error(files, tmp_path) -> None:
    ds = dcmread(files[("R", "CC")])
    del ds.ImageLaterality
    with pytest.raises(ModelError, match="Laterality"):
        read_view(_resave(ds, tmp_path))


def test_contradictory_patient_orientation_is_an_error() -> None:
    with pytest.raises(ModelError, match="anterior"):
        view_orientation("L", "CC", ("F", "R"))


def test_other_views_are_not_oriented() -> None:
    with pytest.raises(ModelError, match="not a CC-like or MLO-like"):
        view_orientation("L", "SPOT", ("A", "R"))


def test_spacing_needs_square_pixels(files, tmp_path) -> None:
    ds = dcmread(files[("L", "CC")])
    ds.ImagerPixelSpacing = [0.1, 0.2]
    with pytest.raises(ModelError, match="square"):
        read_view(_resave(ds, tmp_path))
