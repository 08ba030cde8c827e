"""Shared fixtures. Real peers only; every process started here is stopped in a finaliser."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Orthanc, free_port
from pg import PgServer, why_not_available

#: Test files with the longest tests, run first. With two pytest-xdist workers (``make test``) a file runs on one
#: worker, and a long file left to the end (the lung Orthanc round trips, 2 min) ran alone while the other idled.
LONG_FIRST = ("models/lung_nodules/test_lung_orthanc.py", "models/runtime/test_runtime_triton.py",
              "training/test_phantom_families_mammo_cardiac.py", "aiws/test_demo.py", "aiws/test_stop.py",
              "pacs_bridge/test_fuzz.py", "models/cardiac_mri/test_cardiac_orthanc.py",
              "training/test_phantom_families_eval.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), len(rank)))


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[object]:
    """Start Orthanc instances with given DICOM modalities; all are stopped at the end."""
    started: list[Orthanc] = []

    def start(modalities: dict[str, tuple[str, str, int]] | None = None, name: str = "orthanc") -> Orthanc:
        o = Orthanc(tmp_path / name, modalities=modalities or {})
        started.append(o)
        return o.start()

    yield start
    for o in started:
        o.stop()


@pytest.fixture
def storage_sink() -> Iterator[tuple[int, list[str]]]:
    """A storage SCP (pynetdicom, AE title SINK, every storage SOP class) on a free port that accepts every instance
    and keeps its SOP Instance UID: ``(port, received)``; shut down after the test."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    received: list[str] = []

    def handle_store(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="SINK")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    try:
        yield port, received
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL cluster for the session (``pg.py``; initdb and a start cost seconds): each test takes a
    database of its own with ``new_database()``. Skipped, saying why, where PostgreSQL cannot run."""
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()
