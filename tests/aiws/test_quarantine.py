"""Quarantine, not stall: an instance that cannot be read back takes only its own study to 'error';
every other study goes on, through restarts. Against ``aiws serve`` with dcmtk and pynetdicom peers."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

from aiws.ledger import InstanceRow, Ledger
from factories import make_ct_series
from pacs_bridge.scp import encode_file
from peers import AiwsProcess, storescu, wait_for

pytestmark = [pytest.mark.network]

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.sources]]
ae_title = "PYNET"
host = "127.0.0.1"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


def _spooled(data_dir: Path, f: Path) -> Path:
    ds = dcmread(f, stop_before_pixels=True)
    return data_dir / "spool" / "instances" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"


def _not_inflatable(f: Path) -> bytes:
    """The file's explicit-VR data set under a Deflated transfer syntax, not deflated (the issue's poison pill)."""
    ds = dcmread(f)
    with open(f, "rb") as fp:
        fp.seek(128 + 4 + 8)
        meta_len = int.from_bytes(fp.read(4), "little")
        fp.seek(128 + 4 + 12 + meta_len)
        body = fp.read()
    return encode_file(body, ds.SOPClassUID, ds.SOPInstanceUID, DeflatedExplicitVRLittleEndian, "STORESCU")


def _states(aiws: AiwsProcess) -> dict[str, str]:
    return {s["study_uid"]: s["state"] for s in aiws.api("/api/studies")}


def _send_deflated_poison(aiws: AiwsProcess, path: Path) -> int:
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(CTImageStorage, [DeflatedExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", aiws.dicom_port, ae_title="AIWS")
    assert assoc.is_established
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # a file's data set bytes go out as they are, never decoded
    try:
        status = assoc.send_c_store(path)
        return int(status.Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
        assoc.release()


def test_unreadable_instances_are_quarantined_and_every_other_study_goes_on(tmp_path: Path) -> None:
    studies = {name: generate_uid() for name in ("good", "garbage", "deflate", "missing", "wire", "later")}
    files = {name: make_ct_series(tmp_path / name, n_slices=2, study_uid=uid) for name, uid in studies.items()}
    work = tmp_path / "aiws"
    work.mkdir()
    aiws = AiwsProcess(work, CONFIG, env={"AIWS_WORKERS": "0", "AIWS_QUIET_SECONDS": "3600"}).start()
    try:
        sent = [f for name in ("good", "garbage", "deflate", "missing") for f in files[name]]
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", sent)
        assert out.returncode == 0, out.stdout + out.stderr
        # on the wire: explicit-VR bytes on the Deflated syntax; refused at receipt, or acknowledged and quarantined
        poison = tmp_path / "wire.dcm"
        poison.write_bytes(_not_inflatable(files["wire"][0]))
        wire_status = _send_deflated_poison(aiws, poison)
        aiws.stop()

        data = aiws.data_dir
        _spooled(data, files["garbage"][0]).write_bytes(b"this is not a DICOM file" * 10)
        _spooled(data, files["deflate"][0]).write_bytes(_not_inflatable(files["deflate"][0]))
        _spooled(data, files["missing"][0]).unlink()

        aiws.env["AIWS_QUIET_SECONDS"] = "1"
        aiws.start()
        expect = {studies["good"]: "complete", studies["garbage"]: "error", studies["deflate"]: "error",
                  studies["missing"]: "error"}
        if wire_status == 0:
            expect[studies["wire"]] = "error"
        wait_for(lambda: all(_states(aiws).get(uid) == state for uid, state in expect.items()), timeout=60,
                 what=f"study states {expect}")
        if wire_status != 0:
            assert studies["wire"] not in _states(aiws)

        in_error = {uid for uid, state in expect.items() if state == "error"}
        assert {s["study_uid"] for s in aiws.api("/api/studies?state=error")} == in_error
        garbage = aiws.api(f"/api/studies/{studies['garbage']}")
        assert garbage["error"] == \
            "quarantined 1 instance, first: data set cannot be parsed (pydicom InvalidDicomError)"
        assert garbage["n_instances"] == 1
        reasons = {q["sop_instance_uid"]: q for q in aiws.api("/api/quarantine")}
        sop = {name: dcmread(files[name][0], stop_before_pixels=True).SOPInstanceUID
               for name in ("garbage", "deflate", "missing")}
        assert "cannot be parsed" in reasons[sop["garbage"]]["reason"]
        assert reasons[sop["deflate"]]["reason"] == "data set cannot be parsed (zlib error)"
        assert reasons[sop["missing"]]["reason"] == "file missing from the spool"
        assert reasons[sop["missing"]]["path"] == ""
        for name in ("garbage", "deflate"):
            kept = Path(reasons[sop[name]]["path"])
            assert kept.is_file() and not _spooled(data, files[name][0]).exists()
            assert json.loads(kept.with_suffix(".json").read_text())["reason"] == reasons[sop[name]]["reason"]

        health = aiws.api("/health")
        n_held = 3 if wire_status == 0 else 2
        assert health["status"] == "degraded"
        assert any(r.startswith(f"quarantine: {n_held} instance files") for r in health["reasons"]), health
        metrics = _metrics(aiws)
        assert f'aiws_studies{{state="error"}} {len(expect) - 1}' in metrics
        assert f"aiws_quarantined_instances {n_held}" in metrics
        assert "aiws_health_degraded 1" in metrics
        page = _page(aiws)
        assert f"<td>{studies['garbage']}</td><td>error</td>" in page and "quarantined 1 instance, first: " in page

        # the service goes on: a new study completes while the others stay in error
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files["later"])
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _states(aiws).get(studies["later"]) == "complete", timeout=60, what="a later study")

        aiws.stop()  # and after a restart nothing stalls, nothing comes back from the quarantine
        aiws.start()
        states = _states(aiws)
        assert {uid: states[uid] for uid in expect} == expect
        assert states[studies["later"]] == "complete"
        assert aiws.api("/health")["status"] == "degraded"

        # sending the good file again resolves the study
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files["garbage"])
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _states(aiws).get(studies["garbage"]) == "complete", timeout=60,
                 what="the study resolved by sending again")
        assert aiws.api(f"/api/studies/{studies['garbage']}")["n_instances"] == 2
        assert "scheduler step" not in aiws.log()
    finally:
        aiws.stop()


def _metrics(aiws: AiwsProcess) -> str:
    import httpx

    return httpx.get(f"{aiws.url}/metrics", timeout=30).text


def _page(aiws: AiwsProcess) -> str:
    import httpx

    return httpx.get(f"{aiws.url}/console/status", headers={"Authorization": "Bearer test-token"}, timeout=30).text


def test_version_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "aiws.db"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES('schema_version', '1');
        CREATE TABLE studies(
            study_uid TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK(state IN ('receiving', 'complete', 'purged')),
            generation INTEGER NOT NULL DEFAULT 1, first_received_at REAL NOT NULL,
            last_received_at REAL NOT NULL, completed_at REAL, n_instances INTEGER NOT NULL DEFAULT 0,
            calling_ae TEXT NOT NULL DEFAULT '', n_jobs INTEGER NOT NULL DEFAULT 0,
            unrouted INTEGER NOT NULL DEFAULT 0, purged_at REAL);
        CREATE INDEX ix_studies_state ON studies(state, last_received_at);
        INSERT INTO studies(study_uid, state, first_received_at, last_received_at, n_instances, calling_ae)
            VALUES('1.2.3', 'complete', 1.0, 2.0, 7, 'CT1');
    """)
    con.commit()
    con.close()
    ledger = Ledger(db)
    from aiws.ledger.schema import SCHEMA_VERSION  # 2 added the error state; later versions go on from it

    assert ledger.query("SELECT value FROM meta WHERE key='schema_version'")[0][0] == str(SCHEMA_VERSION)
    study = ledger.get_study("1.2.3")
    assert study is not None and (study.state, study.n_instances, study.calling_ae, study.error) == \
        ("complete", 7, "CT1", "")
    ledger.record_instance(InstanceRow("1.2.3.4", "1.2.4", "1.2.4.1", CTImageStorage, "CT", "", "/x", 1, "A", "",
                                       5.0))
    assert ledger.fail_study("1.2.4", 5.0, "completion failed: KeyError", 6.0)  # 'error' passes the new CHECK
    assert ledger.get_study("1.2.4").state == "error"  # type: ignore[union-attr]
    assert Ledger(db).get_study("1.2.3").n_instances == 7  # type: ignore[union-attr]  # opened again: no-op
    assert [r[0] for r in ledger.query("SELECT name FROM sqlite_master WHERE name='ix_studies_state'")]


def test_file_removed_from_the_spool_while_running_stops_only_its_study(tmp_path: Path) -> None:
    uids = [generate_uid() for _ in range(4)]
    series = [make_ct_series(tmp_path / str(i), n_slices=3, study_uid=uid) for i, uid in enumerate(uids)]
    work = tmp_path / "aiws"
    work.mkdir()
    aiws = AiwsProcess(work, CONFIG, env={"AIWS_WORKERS": "0", "AIWS_QUIET_SECONDS": "1"}).start()
    try:
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", series[0][:2])
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _states(aiws).get(uids[0]) == "complete", timeout=60, what="the first completion")
        _spooled(aiws.data_dir, series[0][0]).unlink()
        # the study re-opens with its last image and completes again: now one of its files is gone
        sent = [series[0][2], *series[1], *series[2], *series[3]]
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", sent)
        assert out.returncode == 0, out.stdout + out.stderr
        want = {uids[0]: "error", uids[1]: "complete", uids[2]: "complete", uids[3]: "complete"}
        wait_for(lambda: {u: _states(aiws).get(u) for u in uids} == want, timeout=60, what=f"states {want}")
        study = aiws.api(f"/api/studies/{uids[0]}")
        assert study["error"] == "quarantined 1 instance, first: file missing from the spool"
        assert (study["generation"], study["n_instances"]) == (2, 2)
        assert aiws.api("/health")["status"] == "ok"  # nothing is held in the quarantine: no file to keep
        assert "Traceback" not in aiws.log()
    finally:
        aiws.stop()


def test_start_up_recovery_quarantines_what_it_cannot_register(tmp_path: Path) -> None:
    from aiws.intake import recover_spool
    from aiws.ledger import QuarantineItem
    from pacs_bridge.spool import Spool

    ledger = Ledger(tmp_path / "aiws.db")
    spool = Spool(tmp_path / "spool", 0)
    good, garbage, held, unmoved = (make_ct_series(tmp_path / n, n_slices=1)[0]
                                    for n in ("good", "garbage", "held", "unmoved"))

    def place(f: Path, study: str | None = None) -> Path:
        ds = dcmread(f, stop_before_pixels=True)
        path = spool.path_for(study or ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.read_bytes())
        return path

    for f in (good, garbage, held):
        place(f)
    place(garbage).write_bytes(b"\x00" * 300)  # spooled, then damaged, before the ledger heard of it
    assert recover_spool(spool, ledger) == 2  # good and held
    held_ds = dcmread(held, stop_before_pixels=True)
    other_study = generate_uid()
    leftover = place(held, other_study)  # the same SOP Instance UID under another study (an old silent drop)
    unmoved_path = place(unmoved)  # its quarantine was recorded, then the process died before the move
    un = dcmread(unmoved, stop_before_pixels=True)
    dest = tmp_path / "spool" / "quarantine" / un.StudyInstanceUID / f"{un.SOPInstanceUID}.dcm"
    ledger.quarantine_instances(un.StudyInstanceUID, [QuarantineItem(un.SOPInstanceUID, un.SeriesInstanceUID,
                                                                     str(unmoved_path), str(dest), "test")],
                                float("inf"), 1.0)

    assert recover_spool(spool, ledger) == 0
    assert dest.is_file() and not unmoved_path.exists()
    assert not leftover.exists()
    (conflict,) = ledger.quarantine_of_study(other_study)
    assert conflict.reason == "SOP instance held under another study"
    assert ledger.get_study(other_study).state == "error"  # type: ignore[union-attr]
    assert ledger.get_study(held_ds.StudyInstanceUID).state == "receiving"  # type: ignore[union-attr]  # untouched
    g = dcmread(garbage, stop_before_pixels=True)
    assert ledger.get_study(g.StudyInstanceUID).state == "error"  # type: ignore[union-attr]
    assert [q.reason for q in ledger.quarantine_of_study(g.StudyInstanceUID)] == \
        ["data set cannot be parsed (pydicom InvalidDicomError)"]
