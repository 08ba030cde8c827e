"""Ledger state machines and retention, on a real SQLite file and a real spool."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread

from aiws.config import Config
from aiws.intake import LedgerListener, recover_spool
from aiws.ledger import InstanceRow, Ledger, NewJob, NewResult
from aiws.scheduler import purge_expired
from factories import make_ct_series
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.spool import Spool


def _row(study: str, sop: str, t: float, path: str = "/x") -> InstanceRow:
    return InstanceRow(sop, study, "1.2.3", "1.2.840.10008.5.1.4.1.1.2", "CT", "1.2.840.10008.1.2.1",
                       path, 10, "PACS", "127.0.0.1", t)


def test_instance_is_recorded_once_and_reopens_a_completed_study(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a.db")
    assert ledger.record_instance(_row("1.1", "1.1.1", 100.0))
    assert not ledger.record_instance(_row("1.1", "1.1.1", 101.0))
    assert ledger.studies_quiet_since(100.0) == [("1.1", 100.0)]
    assert ledger.complete_study("1.1", 100.0, [NewJob("echo_summary", ("1.2.3",), ())], 131.0)
    assert not ledger.complete_study("1.1", 100.0, [], 132.0)  # already complete
    ledger.record_instance(_row("1.1", "1.1.2", 200.0))
    study = ledger.get_study("1.1")
    assert study is not None and (study.state, study.generation, study.n_instances) == ("receiving", 2, 2)


def test_completion_refused_when_an_instance_arrived_meanwhile(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a.db")
    ledger.record_instance(_row("1.1", "1.1.1", 100.0))
    ledger.record_instance(_row("1.1", "1.1.2", 105.0))
    assert not ledger.complete_study("1.1", 100.0, [], 140.0)
    assert ledger.get_study("1.1").state == "receiving"  # type: ignore[union-attr]


def test_claim_is_exclusive_and_dead_worker_jobs_are_requeued(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a.db")
    ledger.record_instance(_row("1.1", "1.1.1", 1.0))
    ledger.complete_study("1.1", 1.0, [NewJob("echo_summary", ("1.2.3",), ())], 2.0)
    other = Ledger(tmp_path / "a.db")  # another process's connection
    job = ledger.claim_job("w1", 3.0)
    assert job is not None and job.attempts == 1
    assert other.claim_job("w2", 3.0) is None
    assert ledger.requeue_running_jobs("w1", max_attempts=2) == 1
    job = other.claim_job("w2", 4.0)
    assert job is not None and job.attempts == 2
    ledger.requeue_running_jobs("w2", max_attempts=2)
    assert ledger.get_job(job.id).state == "failed"  # type: ignore[union-attr]


def test_newer_generation_supersedes_sending_of_older_results(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a.db")
    ledger.record_instance(_row("1.1", "1.1.1", 1.0))
    ledger.complete_study("1.1", 1.0, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], 2.0)
    old = ledger.claim_job("w", 3.0)
    ledger.record_instance(_row("1.1", "1.1.2", 4.0))
    ledger.complete_study("1.1", 4.0, [NewJob("echo_summary", ("1.2.3",), ("pacs",))], 5.0)
    res = [NewResult("sc", "9.9", "9.8", "1.2.840.10008.5.1.4.1.1.7", "/r")]
    assert old is not None and not ledger.finish_job(old.id, res, {}, [("pacs", 1)], 6.0)
    assert ledger.list_sends() == []
    new = ledger.claim_job("w", 7.0)
    assert new is not None and ledger.finish_job(new.id, res, {}, [("pacs", 1)], 8.0)
    assert [s.state for s in ledger.list_sends()] == ["pending"]


def test_retention_waits_for_jobs_and_sends(tmp_path: Path) -> None:
    cfg = Config.model_validate({"storage": {"data_dir": str(tmp_path), "retention_days": 1}})
    ledger = Ledger(tmp_path / "aiws.db")
    spool = Spool(tmp_path / "spool", 0)
    files = make_ct_series(tmp_path / "ct", 2)
    old = time.time() - 3 * 86400
    for f in files:
        ds = dcmread(f)
        info = InstanceInfo(ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                            "CT", "1.2.840.10008.1.2.1")
        kept = spool.store(info, f.read_bytes())
        row = _row(ds.StudyInstanceUID, ds.SOPInstanceUID, old, str(kept.path))
        ledger.record_instance(row)
    study = ds.StudyInstanceUID
    ledger.complete_study(study, old, [NewJob("echo_summary", (ds.SeriesInstanceUID,), ("pacs",))], old)
    assert purge_expired(cfg, ledger, spool, time.time()) == []  # job pending
    job = ledger.claim_job("w", time.time())
    assert job is not None
    ledger.finish_job(job.id, [], {}, [("pacs", 0)], time.time())
    assert purge_expired(cfg, ledger, spool, time.time()) == []  # send pending
    send = ledger.claim_send(time.time())
    assert send is not None
    ledger.send_done(send.id, time.time())
    assert purge_expired(cfg, ledger, spool, time.time()) == [study]
    assert not (spool.instances_dir / study).exists()
    assert ledger.get_study(study).state == "purged"  # type: ignore[union-attr]
    assert ledger.instances_of_study(study) == []


def test_recovery_registers_spooled_files_missing_from_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "aiws.db")
    spool = Spool(tmp_path / "spool", 0)
    f = make_ct_series(tmp_path / "ct", 1)[0]
    ds = dcmread(f)
    info = InstanceInfo(ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, "CT", "")
    spool.store(info, f.read_bytes())  # as if the process died before the ledger commit
    (spool.tmp_dir / "dead.part").write_bytes(b"half")  # a write that was never acknowledged
    assert recover_spool(spool, ledger) == 1
    assert recover_spool(spool, ledger) == 0
    assert ledger.get_study(ds.StudyInstanceUID).n_instances == 1  # type: ignore[union-attr]
    Spool(tmp_path / "spool", 0)
    assert not (spool.tmp_dir / "dead.part").exists()


def test_spool_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    from pacs_bridge.errors import InvalidInstance

    spool = Spool(tmp_path / "spool", 0)
    with pytest.raises(InvalidInstance, match="not a valid DICOM UID"):
        spool.path_for("../../etc", "1.2", "1.3")


@pytest.mark.network
@pytest.mark.parametrize("retrieve", ["c-get", "c-move"])
def test_latest_prior_is_fetched_with_its_stored_result(tmp_path: Path, orthanc_factory, retrieve: str) -> None:
    from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage, generate_uid

    from aiws.priors import fetch_latest_prior
    from pacs_bridge.retrieve import RetrieveInbox
    from pacs_bridge.scp import StorageSCP
    from pacs_bridge.settings import AcceptPolicy, ScpSettings, SenderSettings, Source
    from pacs_bridge.spool import Spool
    from peers import free_port

    port = free_port()
    orthanc = orthanc_factory({"AIWS": ("AIWS", "127.0.0.1", port)})
    dates = {"20230101": generate_uid(), "20240601": generate_uid(), "20990101": generate_uid()}
    for date, uid in dates.items():
        files = make_ct_series(tmp_path / date, 2, study_uid=uid)
        for f in files:
            ds = dcmread(f)
            ds.StudyDate = date
            ds.save_as(f)
        other = dcmread(files[0])  # an earlier result in the study (its own series, another SOP class)
        other.SOPClassUID = other.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        other.SeriesInstanceUID, other.Modality = generate_uid(), "OT"
        other.save_as(tmp_path / date / "sc.dcm")
        orthanc.upload([*files, tmp_path / date / "sc.dcm"])
    current = make_ct_series(tmp_path / "current", 2)
    for f in current:
        ds = dcmread(f)
        ds.StudyDate = "20250101"
        ds.save_as(f)
    ledger = Ledger(tmp_path / "aiws.db")
    cur = dcmread(current[0])
    ledger.record_instance(InstanceRow(cur.SOPInstanceUID, cur.StudyInstanceUID, cur.SeriesInstanceUID,
                                       CTImageStorage, "CT", "", str(current[0]), 1, "ORTHANC", "", 1.0))
    doc = {"sources": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port,
                        "query_retrieve": retrieve}]}
    inbox = RetrieveInbox(tmp_path / "retrieve")
    scp = StorageSCP(ScpSettings(host="127.0.0.1", port=port), lambda: AcceptPolicy("AIWS", True, (Source("ORTHANC"),)),
                     Spool(tmp_path / "spool", 0), LedgerListener(ledger), inbox)  # C-MOVE sends here
    scp.start()
    try:
        priors = fetch_latest_prior(ledger, doc, SenderSettings(ae_title="AIWS"), cur.StudyInstanceUID, "lung",
                                    "CT", [CTImageStorage], tmp_path / "priors", inbox)
    finally:
        scp.stop()
    assert len(ledger.known_instance_uids()) == 1  # only the current study's instance: the prior is not routed
    assert len(priors) == 1
    assert (priors[0].study_uid, priors[0].study_date) == (dates["20240601"], "20240601")
    assert sum(len(v) for v in priors[0].series.values()) == 2  # the CT images, not the secondary capture
    assert len(list((tmp_path / "priors" / dates["20240601"]).iterdir())) == 2
    assert priors[0].results == ()
    no_qr = {"sources": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}]}
    assert fetch_latest_prior(ledger, no_qr, SenderSettings(), cur.StudyInstanceUID, "lung", "CT",
                              [CTImageStorage], tmp_path / "p2") == ()
