"""A private Orthanc on loopback (the PACS of the tests, the benchmarks and ``make demo``).

One Orthanc process with its own free ports, storage and log under a given folder; whoever starts it
stops it (:meth:`Orthanc.stop`). Orthanc Explorer, the web viewer built into Orthanc, is on by default at
:attr:`Orthanc.explorer_url`. Needs the ``Orthanc`` binary (Debian package ``orthanc``).

    orthanc = Orthanc(Path("var/pacs"), modalities={"AIWS": ("AIWS", "127.0.0.1", 11112)}).start()
    ids = orthanc.upload(files)
    orthanc.post("/modalities/AIWS/store", {"Resources": ids, "Synchronous": True})
    orthanc.stop()
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: dcmtk and Orthanc leave Nagle's algorithm on unless this is set (see the developers' guide).
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


#: :func:`free_port` hands out ports from here to 32767, below Linux's ephemeral range (32768-60999).
PORT_BASE = 20_000
#: Ports of one pytest-xdist worker's slice (``PYTEST_XDIST_WORKER`` gw0 .. gw3; more workers share slices).
PORT_SLICE = 3_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that this process has not handed out before.

    Not the port the OS picks on a bind to port 0: that one comes from the ephemeral range, where an outgoing
    connection (storescu's own end, an HTTP client) may take it between this call and the listener's bind, and
    where two test processes running side by side draw from the same pool. So the port comes from below that
    range, from a slice of its own per pytest-xdist worker, starting at an offset from the process id (a
    subprocess that calls this too starts elsewhere), and is checked free by binding it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % 4 if worker[2:].isdigit() else 0
    first = PORT_BASE + index * PORT_SLICE
    start = (os.getpid() * 37) % PORT_SLICE
    for step in range(PORT_SLICE):
        port = first + (start + step) % PORT_SLICE
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {first}-{first + PORT_SLICE - 1}")


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll *predicate* until it returns a truthy value; raise TimeoutError naming *what*."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Orthanc:
    """A private Orthanc started on loopback ports with its own storage under *workdir*.

    *modalities*: Orthanc's ``DicomModalities`` (name -> (AE title, host, port)), the peers it may send to.
    """

    workdir: Path
    aet: str = "ORTHANC"
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    dicom_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    name: str = "aiws-test-orthanc"  # shown in Orthanc Explorer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def explorer_url(self) -> str:
        return f"{self.url}/app/explorer.html"

    def study_page(self, orthanc_id: str) -> str:
        """Orthanc Explorer's page of a study (its Orthanc identifier, not the Study Instance UID)."""
        return f"{self.explorer_url}#study?uuid={orthanc_id}"

    def start(self) -> Orthanc:
        """Write ``orthanc.json`` and start Orthanc; return once its REST API answers.

        Raises:
            RuntimeError: Orthanc exited (with the end of its log).
            TimeoutError: it did not answer within 30 s.
        """
        self.dicom_port = self.dicom_port or free_port()
        self.http_port = self.http_port or free_port()
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": self.name,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "OrthancExplorerEnabled": True,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "OverwriteInstances": True,
            "StableAge": 1,
            "DicomScuTimeout": 30,
            "DicomModalities": {k: list(v) for k, v in self.modalities.items()},
            "Plugins": [],
        }
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(config))
        with open(self.workdir / "orthanc.log", "wb") as log:
            self.proc = subprocess.Popen(["Orthanc", str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=DCMTK_ENV)
        wait_for(self._up, timeout=30, what="Orthanc HTTP")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(self.workdir / 'orthanc.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/system", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Terminate Orthanc (SIGTERM, then SIGKILL after 10 s); a no-op when it is not running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", timeout=60)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any, timeout: float = 300) -> Any:
        r = httpx.post(f"{self.url}{path}", json=body, timeout=timeout) if not isinstance(body, bytes) else \
            httpx.post(f"{self.url}{path}", content=body, timeout=timeout)
        r.raise_for_status()
        return r.json() if r.content else None

    def upload(self, paths: Sequence[Path]) -> list[str]:
        """Store files through the REST API; return Orthanc instance ids."""
        return [self.post("/instances", Path(p).read_bytes())["ID"] for p in paths]

    def study_id(self, study_uid: str) -> str:
        """Orthanc's identifier of the study with this Study Instance UID.

        Raises:
            LookupError: Orthanc holds no such study.
        """
        for found in self.post("/tools/lookup", study_uid.encode()):
            if found.get("Type") == "Study":
                return str(found["ID"])
        raise LookupError(f"study {study_uid} is not in Orthanc")

    def instances_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        found = self.post("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid},
                                          "Expand": True})
        return list(found)

    def file_of(self, instance_id: str) -> bytes:
        r = httpx.get(f"{self.url}/instances/{instance_id}/file", timeout=60)
        r.raise_for_status()
        return r.content
