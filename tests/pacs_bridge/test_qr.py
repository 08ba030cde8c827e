"""C-FIND and C-GET against a real Orthanc."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, generate_uid

from factories import make_ct_series
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, find_studies, get_study
from pacs_bridge.settings import SenderSettings

pytestmark = pytest.mark.network


def test_find_and_get_priors(tmp_path: Path, orthanc_factory) -> None:
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", 1)})
    old, new = generate_uid(), generate_uid()
    old_files = make_ct_series(tmp_path / "old", 3, study_uid=old)
    for f in old_files:
        ds = dcmread(f)
        ds.StudyDate = "20240105"
        ds.save_as(f)
    orthanc.upload(old_files + make_ct_series(tmp_path / "new", 2, study_uid=new))
    target = QueryTarget("ORTHANC", "127.0.0.1", orthanc.dicom_port)
    settings = SenderSettings(ae_title="AIWS")
    studies = find_studies(target, settings, "PHANTOM001", "CT")
    assert [s.study_uid for s in studies] == [old, new]  # oldest first
    assert studies[0].study_date == "20240105"
    assert find_studies(target, settings, "SOMEONE_ELSE") == []

    got = get_study(target, settings, old, tmp_path / "prior", [CTImageStorage])
    assert len(got) == 3
    assert {dcmread(p).SOPInstanceUID for p in got} == {dcmread(f).SOPInstanceUID for f in old_files}
    assert dcmread(got[0]).PixelData == dcmread(next(f for f in old_files
                                                     if dcmread(f).SOPInstanceUID == dcmread(got[0]).SOPInstanceUID)).PixelData


def test_unreachable_pacs_raises(tmp_path: Path) -> None:
    from peers import free_port

    with pytest.raises(SendError, match="association failed"):
        find_studies(QueryTarget("NOPE", "127.0.0.1", free_port()), SenderSettings(), "X")
