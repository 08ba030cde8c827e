"""Grouping instance files into series and selecting series by rules."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from factories import make_ct_series, make_mg_image, make_slices
from imaging.errors import ReadError, RuleError
from imaging.rules import MatchRules
from imaging.series import group_series, select_series


@pytest.fixture
def study(tmp_path: Path) -> dict[str, str]:
    study_uid = "1.2.826.0.1.3680043.10.1078.1"
    make_ct_series(tmp_path / "chest", 4, 8, 8, study_uid=study_uid, series_uid=study_uid + ".1",
                   description="CHEST 2.5mm", spacing=(0.7, 0.7, 2.5))
    make_ct_series(tmp_path / "thin", 4, 8, 8, study_uid=study_uid, series_uid=study_uid + ".2",
                   description="CHEST 0.6mm", spacing=(0.7, 0.7, 0.6))
    make_slices(tmp_path / "coronal", np.zeros((3, 8, 8), np.float32), [(0, y, 0) for y in (0.0, 2.0, 4.0)],
                orientation=(1, 0, 0, 0, 0, -1), study_uid=study_uid, series_uid=study_uid + ".3",
                description="CHEST COR MPR", image_type=("DERIVED", "SECONDARY", "REFORMATTED"), thickness=2.5)
    make_mg_image(tmp_path / "mg" / "mg.dcm", study_uid=study_uid, series_uid=study_uid + ".4")
    (tmp_path / "README.txt").write_text("not a DICOM file")
    return {"root": str(tmp_path), "study": study_uid}


def test_group_series_reads_headers_and_orientation(study: dict[str, str]) -> None:
    files = sorted(Path(study["root"]).rglob("*.*"))
    with pytest.raises(ReadError, match="README.txt: not a DICOM instance"):
        group_series(files)
    series = group_series(files, skip_unreadable=True)
    assert sorted(series) == [study["study"] + s for s in (".1", ".2", ".3", ".4")]
    chest = series[study["study"] + ".1"]
    assert len(chest.files) == 4 and chest.modality == "CT" and chest.orientation == "AXIAL"
    assert series[study["study"] + ".3"].orientation == "CORONAL"
    assert series[study["study"] + ".4"].orientation == ""  # a projection image has none


def test_select_series_by_rules(study: dict[str, str]) -> None:
    series = group_series(sorted(Path(study["root"]).rglob("*.dcm")))
    rules = MatchRules.parse({"Modality": "^CT$", "Orientation": "^AXIAL$", "ImageType": r"^ORIGINAL\\PRIMARY",
                              "SliceThickness": [1.0, 3.0], "SeriesDescription": "(?i)chest"})
    assert [s.series_uid for s in select_series(series.values(), rules)] == [study["study"] + ".1"]
    any_ct = MatchRules.parse({"Modality": "CT"})
    assert len(select_series(series.values(), any_ct)) == 3
    coronal = MatchRules.parse({"Orientation": "CORONAL|SAGITTAL"})
    assert [s.description for s in select_series(series.values(), coronal)] == ["CHEST COR MPR"]


def test_orientation_rule_on_a_raw_dataset_and_on_enhanced_instances() -> None:
    from pydicom import dcmread

    rule = MatchRules.parse({"Orientation": "AXIAL"})
    assert rule.matches(dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True))
    assert rule.matches(dcmread(get_testdata_file("eCT_Supplemental.dcm"), stop_before_pixels=True))
    assert not rule.matches(dcmread(get_testdata_file("JPEG-LL.dcm"), stop_before_pixels=True))


def test_orientation_rule_must_be_a_regex() -> None:
    with pytest.raises(RuleError, match="derived keyword takes a regex"):
        MatchRules.parse({"Orientation": [1, 2]})
