"""View selection of the mammography pipeline: standard views kept, extra views and "For Processing" skipped
with a reason, nothing suitable refused."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from models.errors import NoSuitableSeries
from models.mammography.pipeline import select_views
from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam


@pytest.fixture(scope="module")
def exam():
    return make_exam(9, PhantomConfig(spacing_mm=1.0))


def _copy(path: Path, target: Path, **changes: object) -> Path:
    ds = dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(target, enforce_file_format=True)
    return target


def test_standard_views_latest_repeat_and_extra_views(exam, tmp_path: Path) -> None:
    files = write_exam(exam, tmp_path / "mg")
    lcc = next(f for f in files if f.name == "mg_LCC.dcm")
    repeat = _copy(lcc, tmp_path / "repeat.dcm", InstanceNumber=20)
    extra = _copy(lcc, tmp_path / "ml.dcm", ViewPosition="ML", InstanceNumber=21)
    raw = write_exam(exam, tmp_path / "raw", MgStudyOptions(for_processing=True))
    selection = select_views({"a": tuple(files) + (repeat, extra), "b": tuple(raw)})
    assert sorted(selection.files) == [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    assert selection.files[("L", "CC")] == repeat
    assert any("repeated L CC" in s for s in selection.skipped)
    assert any("not a standard CC/MLO view" in s for s in selection.skipped)
    assert sum("For Processing" in s for s in selection.skipped) == 4


def test_only_for_processing_is_refused_with_the_reason(exam, tmp_path: Path) -> None:
    raw = write_exam(exam, tmp_path / "raw", MgStudyOptions(for_processing=True))
    with pytest.raises(NoSuitableSeries, match="For Processing"):
        select_views({"b": tuple(raw)})


def test_no_mammogram_is_refused(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from factories import make_ct_series

    with pytest.raises(NoSuitableSeries, match="modality CT"):
        select_views({"ct": tuple(make_ct_series(tmp_path / "ct", n_slices=2))})
