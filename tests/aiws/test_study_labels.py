"""The console's study labels (accession, modality, description) are filled at intake from the header the SCP
reads, by a real SCP receiving from dcmtk ``storescu``, and by the start-up recovery of the spool; they stay out
of the logs, the audit and the JSON answers (the end-to-end check: tests/aiws/test_no_phi_leak.py)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from aiws.intake import LedgerListener, recover_spool
from aiws.ledger import Ledger
from aiws.ledger.rows import joined_modalities
from factories import make_ct_series
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.scp import StorageSCP
from pacs_bridge.settings import AcceptPolicy, ScpSettings, Source
from pacs_bridge.spool import Spool
from peers import free_port, have_tool, storescu

ACCESSION, DESCRIPTION = "ACCL4471", "CT THORAX LBLQ"


def _series(out: Path, study: str, modality: str, accession: str = ACCESSION,
            description: str = DESCRIPTION) -> list[Path]:
    files = make_ct_series(out, n_slices=2, study_uid=study)
    for path in files:
        ds = dcmread(path)
        ds.AccessionNumber, ds.StudyDescription, ds.Modality = accession, description, modality
        ds.save_as(path)
    return files


@pytest.mark.network
@pytest.mark.skipif(not have_tool("storescu"), reason="dcmtk storescu missing")
def test_labels_filled_at_intake_and_never_logged_or_audited(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    ledger = Ledger(tmp_path / "aiws.db")
    scp = StorageSCP(ScpSettings(host="127.0.0.1", port=free_port()),
                     lambda: AcceptPolicy("AIWS", True, (Source("STORESCU"),)), Spool(tmp_path / "spool", 0),
                     LedgerListener(ledger))
    study = generate_uid()
    first = _series(tmp_path / "a", study, "CT")
    # a later series of the same study: another modality joins the label, the first accession stays
    second = _series(tmp_path / "b", study, "PT", accession="ACCOTHER9", description="")
    scp.start()
    try:
        with caplog.at_level(logging.DEBUG):
            for files in (first, second):
                out = storescu("127.0.0.1", scp.port, "AIWS", "STORESCU", files)
                assert out.returncode == 0, out.stdout + out.stderr
    finally:
        scp.stop()
    row = ledger.get_study(study)
    assert row is not None and row.n_instances == 4
    assert (row.accession, row.modality, row.description) == (ACCESSION, "CT/PT", DESCRIPTION)
    audit = repr(ledger.list_audit(1000))
    logged = caplog.text
    for value in (ACCESSION, "ACCOTHER9", DESCRIPTION, "LBLQ"):
        assert value not in audit and value not in logged, value


def test_info_repr_keeps_the_labels_out() -> None:
    info = InstanceInfo("1.2", "1.2.3", "1.2.4", "1.2.5", "CT", "1.2.840.10008.1.2.1", ACCESSION, DESCRIPTION)
    assert ACCESSION not in repr(info) and DESCRIPTION not in repr(info)
    assert dataclasses.asdict(info)["accession_number"] == ACCESSION


def test_recovered_instances_get_their_labels(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "aiws.db")
    spool = Spool(tmp_path / "spool", 0)
    study = generate_uid()
    for f in _series(tmp_path / "ct", study, "MR"):
        ds = dcmread(f)
        info = InstanceInfo(ds.SOPClassUID, ds.SOPInstanceUID, study, ds.SeriesInstanceUID, "MR", "")
        spool.store(info, f.read_bytes())  # as if the process died before the ledger commit
    assert recover_spool(spool, ledger) == 2
    row = ledger.get_study(study)
    assert row is not None and (row.accession, row.modality, row.description) == (ACCESSION, "MR", DESCRIPTION)


@pytest.mark.parametrize(("label", "modality", "joined"), [
    ("", "CT", "CT"), ("CT", "CT", "CT"), ("CT", "SR", "CT/SR"), ("CT/SR", "CT", "CT/SR"), ("CT", "", "CT"),
])
def test_modalities_are_joined_once_each_in_order(label: str, modality: str, joined: str) -> None:
    assert joined_modalities(label, modality) == joined
