"""Fixtures for tests/imaging: a result context and one Orthanc per module (stopped in the finaliser)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from imaging.results import AlgorithmId, ResultContext
from peers import Orthanc


@pytest.fixture
def context() -> ResultContext:
    return ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="2.1.0",
                         manufacturer="AIWS test", institution_name="Test Hospital",
                         algorithm=AlgorithmId("aiws-lung-detector", "2.1.0", (("threshold", "0.5"),)))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """One Orthanc per test module; stopped in the finaliser."""
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        yield server
    finally:
        server.stop()


