"""Shared fixtures. Real peers only; every process started here is stopped in a finaliser."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Orthanc
from pg import PgServer, why_not_available


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
