"""Shared fixtures. Real peers only; every process started here is stopped in a finaliser."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Orthanc


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
