"""One C-STORE path in the bridge: an instance a PACS sends during our C-GET goes through the storage SCP's
checks (pacs_bridge.scp.store_received) and is refused with the same status and reason; the rest of the
retrieve is kept. The PACS is a pynetdicom C-GET SCP on 127.0.0.1."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from factories import make_ct_series
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, get_study
from pacs_bridge.settings import SenderSettings
from pacs_bridge.status import StoreStatus
from peers import free_port

pytestmark = pytest.mark.network


def test_c_get_refuses_what_the_scp_refuses_and_keeps_the_rest(tmp_path: Path) -> None:
    study = generate_uid()
    good, bad = (dcmread(f) for f in make_ct_series(tmp_path / "pacs", 2, study_uid=study))
    bad.PixelData = bad.PixelData[:100]  # Pixel Data shorter than Rows x Columns x Bits Allocated

    def on_get(event: evt.Event) -> Iterator[object]:
        yield 2
        for ds in (good, bad):
            yield 0xFF00, ds  # pynetdicom's C-GET SCP: pending, then the instance to C-STORE

    pacs = AE(ae_title="PACS")
    pacs.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    pacs.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
    port = free_port()
    server = pacs.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    try:
        got = get_study(QueryTarget("PACS", "127.0.0.1", port), SenderSettings(ae_title="AIWS"), study,
                        tmp_path / "prior", [CTImageStorage])
    finally:
        server.shutdown()
    assert [dcmread(p).SOPInstanceUID for p in got] == [good.SOPInstanceUID]
    assert not (tmp_path / "prior" / f"{bad.SOPInstanceUID}.dcm").exists()


def test_a_retrieve_of_nothing_but_refused_instances_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every sub-operation refused (with the storage SCP's status and reason): the PACS ends the C-GET
    with a failure, and the prior is not fetched."""
    study = generate_uid()
    (bad,) = (dcmread(f) for f in make_ct_series(tmp_path / "pacs", 1, study_uid=study))
    bad.PixelData = bad.PixelData[:100]

    def on_get(event: evt.Event) -> Iterator[object]:
        yield 1
        yield 0xFF00, bad

    pacs = AE(ae_title="PACS")
    pacs.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    pacs.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
    port = free_port()
    server = pacs.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    try:
        with pytest.raises(SendError, match="final status 0xa702"):
            get_study(QueryTarget("PACS", "127.0.0.1", port), SenderSettings(ae_title="AIWS"), study,
                      tmp_path / "prior", [CTImageStorage])
    finally:
        server.shutdown()
    refusals = [r.getMessage() for r in caplog.records if "instance refused" in r.getMessage()]
    assert len(refusals) == 1
    assert StoreStatus.DATASET_MISMATCH.name in refusals[0] and "Pixel Data is 100 bytes" in refusals[0]
    assert not any((tmp_path / "prior").glob("*.dcm"))
