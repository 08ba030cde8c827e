"""A real Triton server for tests: the pytriton-bundled tritonserver in ``.venv-triton`` serving a
Python-backend twin of a model repository (see ``scripts/triton_local.py``).

Reusable by any test: ``from triton_server import TritonServer, triton_available, triton_factory``
(``triton_factory`` is a pytest fixture; import it into the test module). Every server started is
stopped (its whole process group) in the fixture finaliser.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from peers import free_port, wait_for  # noqa: E402
from scripts.triton_local import VENV_TRITON, ServerOptions, generate_python_repository, start_server  # noqa: E402


def triton_available() -> bool:
    """True when ``make setup`` built ``.venv-triton`` with the pytriton server."""
    return any(VENV_TRITON.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver"))


@dataclass
class TritonServer:
    """One tritonserver on free loopback ports; ``stop`` and ``start`` again keep the same ports."""

    workdir: Path
    repository: Path
    grpc_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, wait_models: tuple[str, ...] = (), timeout: float = 120.0) -> TritonServer:
        self.grpc_port = self.grpc_port or free_port()
        self.http_port = self.http_port or free_port()
        # tritonserver waits up to --exit-timeout-secs (30 by default) on SIGTERM for clients still connected;
        # a test's server has nothing to finish, so 5 s (it cost 30 s per teardown)
        options = ServerOptions(self.workdir, self.grpc_port, self.http_port, self.repository, poll_seconds=1,
                                extra=["--exit-timeout-secs=5"])
        self.proc = start_server(options)
        self.starts += 1
        wait_for(self._ready, timeout=timeout, interval=0.5, what=f"tritonserver on {self.http_url} (log "
                 f"{self.workdir / 'tritonserver.log'})")
        for model in wait_models:
            wait_for(lambda m=model: self.model_ready(m), timeout=timeout, interval=0.5, what=f"model {model} ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"tritonserver exited with {self.proc.returncode}; see {self.workdir}/tritonserver.log")
        try:
            return httpx.get(f"http://{self.http_url}/v2/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def model_ready(self, model: str, version: int | None = None) -> bool:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
        try:
            return httpx.get(f"http://{self.http_url}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def regenerate(self) -> None:
        """Publish the repository's current versions to the running server (it polls every second)."""
        generate_python_repository(self.repository, self.workdir / "models")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def triton_factory(tmp_path: Path) -> Iterator[object]:
    """``start(repository, wait_models=(...)) -> TritonServer``; all servers stopped at the end."""
    if not triton_available():
        pytest.skip("no .venv-triton with nvidia-pytriton (run 'make setup')")
    started: list[TritonServer] = []

    def start(repository: Path, wait_models: tuple[str, ...] = ()) -> TritonServer:
        server = TritonServer(tmp_path / f"triton{len(started)}", repository)
        started.append(server)
        return server.start(wait_models)

    yield start
    for server in started:
        server.stop()
