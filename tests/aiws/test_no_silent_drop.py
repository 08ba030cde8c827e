"""No silent drop: an acknowledged image is always in the ledger with its file, or it was refused with
a reason. Duplicate SOP Instance UIDs across studies, a retention purge racing an arriving image, and
C-STOREs during a C-MOVE, with dcmtk and pynetdicom peers against the service's SCP and ledger."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from aiws.config import Config
from aiws.intake import LedgerListener
from aiws.ledger import Ledger
from aiws.scheduler import PURGING_DIR, purge_expired
from factories import make_ct_series
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.scp import StorageSCP
from pacs_bridge.settings import AcceptPolicy, ScpSettings, Source
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import StoreStatus
from peers import AiwsProcess, free_port, storescu

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


def _store(port: int, ds: Dataset, **originator: object) -> int:
    """C-STORE *ds* with pynetdicom as PYNET; the response status."""
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="AIWS")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds, **originator).Status)  # type: ignore[arg-type]
    finally:
        assoc.release()


def _study(aiws: AiwsProcess, uid: str) -> dict[str, object] | None:
    r = httpx.get(f"{aiws.url}/api/studies/{uid}", headers={"Authorization": "Bearer test-token"}, timeout=30)
    return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiwsProcess]:
    """One service for the module's two tests on it: each stores studies of its own (new UIDs) and counts what
    it caused (refusals) from where it started."""
    work = tmp_path_factory.mktemp("aiws")
    aiws = AiwsProcess(work, CONFIG, env={"AIWS_WORKERS": "0", "AIWS_QUIET_SECONDS": "3600"}).start()
    yield aiws
    aiws.stop()


def _conflicts(aiws: AiwsProcess) -> float:
    """``aiws_instances_refused_total{kind="conflict"}`` (0 before the first)."""
    text = httpx.get(f"{aiws.url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('aiws_instances_refused_total{kind="conflict"}'))


def test_same_sop_instance_under_another_study_is_refused_with_a_reason(tmp_path: Path, service: AiwsProcess) -> None:
    refused_before = [a for a in service.api("/api/audit") if a["action"] == "instance refused"]
    conflicts_before = _conflicts(service)
    files = make_ct_series(tmp_path / "x", n_slices=2)
    out = storescu("127.0.0.1", service.dicom_port, "AIWS", "STORESCU", files)
    assert out.returncode == 0, out.stdout + out.stderr
    first = dcmread(files[0])
    other = dcmread(files[0])
    other.StudyInstanceUID, other.SeriesInstanceUID = generate_uid(), generate_uid()

    assert _store(service.dicom_port, other) == StoreStatus.DUPLICATE_SOP_INSTANCE
    assert _study(service, other.StudyInstanceUID) is None
    assert _study(service, first.StudyInstanceUID)["n_instances"] == 2  # type: ignore[index]
    spool = service.data_dir / "spool" / "instances"
    assert not (spool / other.StudyInstanceUID / other.SeriesInstanceUID / f"{other.SOPInstanceUID}.dcm").exists()
    refused = [a for a in service.api("/api/audit") if a["action"] == "instance refused"]
    assert len(refused) == len(refused_before) + 1
    assert (refused[0]["detail"]["kind"], refused[0]["detail"]["study_uid"]) == ("conflict", other.StudyInstanceUID)
    assert _conflicts(service) == conflicts_before + 1
    # the same instance in its own study again is the idempotent duplicate it always was
    assert _store(service.dicom_port, first) == StoreStatus.SUCCESS
    assert _study(service, first.StudyInstanceUID)["n_instances"] == 2  # type: ignore[index]


def test_retrieve_inbox_takes_only_stores_with_the_expected_move_originator(tmp_path: Path,
                                                                            service: AiwsProcess) -> None:
    study = generate_uid()
    plain, moved, foreign = (dcmread(f) for f in make_ct_series(tmp_path / "p", n_slices=3, study_uid=study))
    folder = RetrieveInbox(service.data_dir / "retrieve").expect(study, "AIWS")  # as a worker's C-MOVE does

    assert _store(service.dicom_port, plain) == StoreStatus.SUCCESS  # no Move Originator: a normal store
    assert _study(service, study)["n_instances"] == 1  # type: ignore[index]
    assert _store(service.dicom_port, moved, originator_aet="AIWS", originator_id=7) == StoreStatus.SUCCESS
    assert (folder / f"{moved.SOPInstanceUID}.dcm").is_file()
    assert _study(service, study)["n_instances"] == 1  # type: ignore[index]  # the prior is not routed
    assert _store(service.dicom_port, foreign, originator_aet="VIEWER", originator_id=3) == StoreStatus.SUCCESS
    assert _study(service, study)["n_instances"] == 2  # type: ignore[index]
    assert sorted(p.name for p in folder.glob("*.dcm")) == [f"{moved.SOPInstanceUID}.dcm"]


class _Interleaved(LedgerListener):
    """The ledger listener with a retention purge run at a chosen point of one C-STORE."""

    def __init__(self, ledger: Ledger, purge: Callable[[], list[str]]) -> None:
        super().__init__(ledger)
        self.purge = purge
        self.when = ""  # "before": between the spool write and the record; "after": after the record
        self.purged: list[str] | None = None

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None:
        when, self.when = self.when, ""
        if when == "before":
            self.purged = self.purge()
        super().instance_stored(info, spooled, calling_ae, peer_ip)
        if when == "after":
            self.purged = self.purge()


def test_purge_racing_an_arriving_image_never_loses_an_acknowledged_one(tmp_path: Path) -> None:
    data = tmp_path / "var"
    cfg = Config.model_validate({"storage": {"data_dir": str(data), "retention_days": 1}})
    ledger = Ledger(data / "aiws.db")
    spool = Spool(data / "spool", 0)
    listener = _Interleaved(ledger, lambda: purge_expired(cfg, ledger, spool, time.time() + 2 * 86400))
    scp = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port()),
                     lambda: AcceptPolicy("AIWS", True, (Source("PYNET"),)), spool, listener)
    scp.start()
    try:
        study = generate_uid()
        old, late, later = (dcmread(f) for f in make_ct_series(tmp_path / "s", n_slices=3, study_uid=study))
        assert _store(scp.port, old) == StoreStatus.SUCCESS
        assert ledger.complete_study(study, time.time(), [], time.time())

        # recorded first: the study re-opens and the purge, re-checking it, leaves it alone
        listener.when = "after"
        assert _store(scp.port, late) == StoreStatus.SUCCESS
        assert listener.purged == []
        assert {i.sop_instance_uid for i in ledger.instances_of_study(study)} == {old.SOPInstanceUID,
                                                                                 late.SOPInstanceUID}
        assert all(Path(i.path).is_file() for i in ledger.instances_of_study(study))
        assert ledger.complete_study(study, time.time(), [], time.time())

        # written, then purged before it is recorded: refused (the peer sends again), never acknowledged
        listener.when = "before"
        assert _store(scp.port, later) == StoreStatus.PROCESSING_FAILURE
        assert listener.purged == [study]
        assert ledger.get_study(study).state == "purged"  # type: ignore[union-attr]
        assert not (spool.root / PURGING_DIR / study).exists()
        assert _store(scp.port, later) == StoreStatus.SUCCESS  # sent again: a fresh folder, study re-opened
        kept = ledger.instances_of_study(study)
        assert [i.sop_instance_uid for i in kept] == [later.SOPInstanceUID] and Path(kept[0].path).is_file()
        assert ledger.get_study(study).state == "receiving"  # type: ignore[union-attr]
        refused = [a["detail"]["kind"] for a in ledger.list_audit(action_prefix="instance refused")]
        assert refused == ["gone"]
    finally:
        scp.stop()


def test_interrupted_purge_is_put_back_or_finished(tmp_path: Path) -> None:
    data = tmp_path / "var"
    cfg = Config.model_validate({"storage": {"data_dir": str(data), "retention_days": 1}})
    ledger = Ledger(data / "aiws.db")
    spool = Spool(data / "spool", 0)
    kept, gone = generate_uid(), generate_uid()
    for uid in (kept, gone):
        f = make_ct_series(tmp_path / uid, n_slices=1, study_uid=uid)[0]
        ds = dcmread(f)
        info = InstanceInfo(ds.SOPClassUID, ds.SOPInstanceUID, uid, ds.SeriesInstanceUID, "CT", ExplicitVRLittleEndian)
        LedgerListener(ledger).instance_stored(info, spool.store(info, f.read_bytes()), "PYNET", "127.0.0.1")
        assert ledger.complete_study(uid, time.time(), [], time.time())
    aside = spool.root / PURGING_DIR
    aside.mkdir()
    (spool.instances_dir / kept).rename(aside / kept)  # crashed after the rename, before the commit
    assert ledger.purge_study(gone, time.time() + 10, time.time(),  # crashed after the commit, before the delete
                              lambda: (spool.instances_dir / gone).rename(aside / gone))

    assert purge_expired(cfg, ledger, spool, time.time()) == []  # nothing old enough: only settles
    assert list(aside.iterdir()) == []
    (inst,) = ledger.instances_of_study(kept)
    assert Path(inst.path).is_file() and ledger.get_study(kept).state == "complete"  # type: ignore[union-attr]
    assert ledger.get_study(gone).state == "purged"  # type: ignore[union-attr]
