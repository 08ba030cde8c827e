"""C-FIND, C-GET and C-MOVE against a real Orthanc."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, generate_uid
from test_scp import Recorder

from factories import make_ct_series
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, find_studies, get_study, move_study
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.scp import StorageSCP
from pacs_bridge.settings import AcceptPolicy, ScpSettings, SenderSettings, Source
from pacs_bridge.spool import Spool
from peers import free_port

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


def test_move_lands_an_expected_study_in_the_inbox_and_anything_else_in_the_spool(tmp_path: Path,
                                                                                   orthanc_factory) -> None:
    port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", port)})
    prior, other = generate_uid(), generate_uid()
    prior_files = make_ct_series(tmp_path / "prior", 3, study_uid=prior)
    orthanc.upload(prior_files + make_ct_series(tmp_path / "other", 2, study_uid=other))
    spool, rec, inbox = Spool(tmp_path / "spool", 1 << 20), Recorder(), RetrieveInbox(tmp_path / "retrieve")
    scp = StorageSCP(ScpSettings(host="127.0.0.1", port=port),
                     lambda: AcceptPolicy("AIWS", True, (Source("ORTHANC"),)), spool, rec, inbox)
    scp.start()
    try:
        target = QueryTarget("ORTHANC", "127.0.0.1", orthanc.dicom_port, "c-move")
        inbox.expect(prior, "AIWS")
        assert move_study(target, SenderSettings(ae_title="AIWS"), prior, "AIWS") == 3
        got = inbox.take(prior, tmp_path / "cache" / prior)
        assert {dcmread(p).SOPInstanceUID for p in got} == {dcmread(f).SOPInstanceUID for f in prior_files}
        assert rec.stored == [] and not (tmp_path / "retrieve" / prior).exists()  # not a study to route
        # a study nobody expects is an ordinary store: spooled and told to the ledger, never dropped
        assert move_study(target, SenderSettings(ae_title="AIWS"), other, "AIWS") == 2
        assert {i.study_instance_uid for i in rec.stored} == {other}
        with pytest.raises(SendError, match="to NOBODY: final status 0x"):  # a destination Orthanc does not know
            move_study(target, SenderSettings(ae_title="AIWS"), prior, "NOBODY")
    finally:
        scp.stop()


def test_inbox_ignores_stores_moved_for_another_ae(tmp_path: Path) -> None:
    inbox = RetrieveInbox(tmp_path)
    uid = generate_uid()
    folder = inbox.expect(uid, "AIWS")
    assert inbox.claims(uid, "", "AIWS") is None  # no Move Originator: an ordinary store, never swallowed
    assert inbox.claims(uid, "AIWS", "AIWS") == folder
    assert inbox.claims(uid, "AIWS", "OTHER") == folder  # the AE title the C-MOVE was issued from counts
    assert inbox.claims(uid, "VIEWER", "AIWS") is None  # someone else's move of the same study
    assert inbox.claims(generate_uid(), "AIWS", "AIWS") is None
    assert inbox.claims("../..", "AIWS", "AIWS") is None
    inbox.forget(uid)
    assert inbox.claims(uid, "AIWS", "AIWS") is None


def test_unreachable_pacs_raises(tmp_path: Path) -> None:
    with pytest.raises(SendError, match="association failed"):
        find_studies(QueryTarget("NOPE", "127.0.0.1", free_port()), SenderSettings(), "X")
