"""Real peers for tests: Orthanc, dcmtk tools, dciodvfy. Every process started is stopped by its owner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Orthanc and the helpers it needs live in scripts/orthanc_local.py (``make demo`` starts the same Orthanc).
from scripts.orthanc_local import DCMTK_ENV, Orthanc, free_port, wait_for  # noqa: E402

__all__ = ["DCMTK_ENV", "AiwsProcess", "Orthanc", "dciodvfy_errors", "echoscu", "free_port", "have_tool",
           "storescu", "wait_for"]


def dciodvfy_errors(path: Path) -> list[str]:
    """Lines of ``dciodvfy`` output that start with 'Error' (the test fails on any)."""
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    return [line for line in text.splitlines() if line.startswith("Error")]


def storescu(host: str, port: int, called: str, calling: str, files: Sequence[Path], *extra: str,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run dcmtk ``storescu`` (TCP_NODELAY on); returns the completed process."""
    cmd = ["storescu", "-aet", calling, "-aec", called, *extra, host, str(port), *[str(f) for f in files]]
    return subprocess.run(cmd, capture_output=True, text=True, env=DCMTK_ENV, timeout=timeout)


def echoscu(host: str, port: int, called: str, calling: str) -> subprocess.CompletedProcess[str]:
    cmd = ["echoscu", "-aet", calling, "-aec", called, host, str(port)]
    return subprocess.run(cmd, capture_output=True, text=True, env=DCMTK_ENV, timeout=60)


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


@dataclass
class AiwsProcess:
    """``aiws serve`` as a real subprocess with its own config and data directory."""

    workdir: Path
    config_text: str
    dicom_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "var"

    def start(self) -> AiwsProcess:
        self.dicom_port = self.dicom_port or free_port()
        self.http_port = self.http_port or free_port()
        cfg = self.workdir / "aiws.toml"
        cfg.write_text(self.config_text.format(dicom_port=self.dicom_port, http_port=self.http_port,
                                               data_dir=self.data_dir))
        log = open(self.workdir / "aiws.log", "ab")
        env = {**os.environ, "AIWS_ADMIN_TOKEN": "test-token", **self.env}
        self.proc = subprocess.Popen(
            [str(Path(os.sys.executable).parent / "aiws"), "serve", "--config", str(cfg)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        wait_for(self._up, timeout=60, what="aiws HTTP /health")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"aiws exited: {self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        path = self.workdir / "aiws.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the service and its worker processes (as a crash would)."""
        if self.proc is None:
            return
        import signal

        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    def api(self, path: str, method: str = "GET", **kw: Any) -> Any:
        headers = {"Authorization": "Bearer test-token"}
        r = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)
        r.raise_for_status()
        return r.json() if r.content else None
