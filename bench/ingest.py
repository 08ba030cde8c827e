"""Ingest benchmark: a 300-slice 512×512 CT series sent with dcmtk ``storescu`` over loopback into
(a) AIWS (``aiws serve``, fsync before every acknowledgement), (b) dcmtk ``storescp`` (no fsync),
(c) Orthanc, in the same run: on one association, on 4 parallel associations (75 files each), and one
large multi-frame instance (``--big-mb``) on one association. For each receiver: seconds, images/s
and its peak resident memory (the process and its children, sampled every 20 ms); then the ratios
AIWS/storescp and AIWS/Orthanc for time and memory.

Run: ``make bench`` or ``.venv/bin/python bench/ingest.py [--slices 300] [--repeat 3] [--big-mb 256]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, Orthanc, free_port, wait_for

AIWS_CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
max_pdu_bytes = MAX_PDU
[study]
quiet_seconds = 3600
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 64
[workers]
count = 0
"""
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class PeakRss:
    """Peak of the summed resident memory of *pid* and its descendants while the block runs."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid, self.interval_s, self.peak = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        tree, total, todo = _children(), 0, [self.pid]
        while todo:
            pid = todo.pop()
            total += _rss_bytes(pid)
            todo.extend(tree.get(pid, ()))
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_bytes: int


def send(port: int, called: str, files: Sequence[Path], associations: int) -> float:
    """storescu on *associations* parallel associations (files split evenly); wall seconds."""
    parts = [list(files[i::associations]) for i in range(associations)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["storescu", "-aet", "BENCH", "-aec", called, "127.0.0.1", str(port),
                               *map(str, part)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=DCMTK_ENV)
             for part in parts if part]
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - t0
    for p, out in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"storescu into {called} failed: {out[-800:].decode(errors='replace')}")
    return seconds


def run_aiws(work: Path, files: Sequence[Path], associations: int, max_pdu: int) -> Run:
    aiws = AiwsProcess(work, AIWS_CONFIG.replace("MAX_PDU", str(max_pdu))).start()
    try:
        assert aiws.proc is not None
        with PeakRss(aiws.proc.pid) as rss:
            seconds = send(aiws.dicom_port, "AIWS", files, associations)
        n = aiws.api("/health")["counts"]["instances"]["total"]
        if n != len(files):
            raise RuntimeError(f"AIWS ledger has {n} instances, expected {len(files)}")
        return Run(seconds, rss.peak)
    finally:
        aiws.stop()


def run_storescp(work: Path, files: Sequence[Path], associations: int, max_pdu: int) -> Run:
    port = free_port()
    out = work / "out"
    out.mkdir()
    # --fork: one child per association, as the others serve associations in parallel
    cmd = ["storescp", "-aet", "STORESCP", "-od", str(out), *(["--fork"] if associations > 1 else []), str(port)]
    proc = subprocess.Popen(cmd, env=DCMTK_ENV)
    try:
        wait_for(lambda: subprocess.run(["echoscu", "-aec", "STORESCP", "127.0.0.1", str(port)],
                                        capture_output=True, env=DCMTK_ENV).returncode == 0, what="storescp")
        with PeakRss(proc.pid) as rss:
            seconds = send(port, "STORESCP", files, associations)
        return Run(seconds, rss.peak)
    finally:
        proc.terminate()
        proc.wait()


def run_orthanc(work: Path, files: Sequence[Path], associations: int, max_pdu: int) -> Run:
    orthanc = Orthanc(work).start()
    try:
        assert orthanc.proc is not None
        with PeakRss(orthanc.proc.pid) as rss:
            seconds = send(orthanc.dicom_port, "ORTHANC", files, associations)
        n = orthanc.get("/statistics")["CountInstances"]
        if n != len(files):
            raise RuntimeError(f"Orthanc has {n} instances, expected {len(files)}")
        return Run(seconds, rss.peak)
    finally:
        orthanc.stop()


Receiver = Callable[[Path, Sequence[Path], int, int], Run]
RECEIVERS: dict[str, Receiver] = {"AIWS (fsync)": run_aiws, "dcmtk storescp": run_storescp, "Orthanc": run_orthanc}


def big_instance(out_dir: Path, size_mb: int) -> Path:
    """One multi-frame 512×512 16-bit CT instance of about *size_mb* MiB (pixel values are not read)."""
    src = make_ct_series(out_dir / "one", n_slices=1, rows=512, cols=512)[0]
    ds = dcmread(src)
    frames = max(1, size_mb * 2**20 // (512 * 512 * 2))
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros(frames * 512 * 512, np.uint16).tobytes()
    path = out_dir / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def measure(root: Path, name: str, receiver: Receiver, files: Sequence[Path], associations: int,
            repeat: int, max_pdu: int) -> Run:
    runs = []
    for i in range(repeat):
        work = root / f"{name.split()[0]}-{associations}-{i}"
        work.mkdir()
        runs.append(receiver(work, files, associations, max_pdu))
        shutil.rmtree(work)
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_rss_bytes for r in runs))


def report(title: str, n_images: int, results: dict[str, Run]) -> None:
    print(f"\n{title}")
    print(f"{'receiver':<16} {'seconds':>8} {'images/s':>9} {'peak RSS MiB':>13}")
    for name, r in results.items():
        print(f"{name:<16} {r.seconds:8.2f} {n_images / r.seconds:9.1f} {r.peak_rss_bytes / 2**20:13.1f}")
    ours = results.get("AIWS (fsync)")
    for base in ("dcmtk storescp", "Orthanc"):
        if ours and base in results:
            print(f"ratio AIWS/{base.split()[-1]:<9} time {ours.seconds / results[base].seconds:5.2f}   "
                  f"peak RSS {ours.peak_rss_bytes / results[base].peak_rss_bytes:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4, help="associations in the parallel run")
    parser.add_argument("--big-mb", type=int, default=256, help="size of the single large instance (0: skip)")
    parser.add_argument("--only-aiws", action="store_true", help="skip the baselines")
    parser.add_argument("--max-pdu", type=int, default=1_048_576, help="AIWS maximum PDU size")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aiws-bench-ingest-"))
    receivers = {"AIWS (fsync)": RECEIVERS["AIWS (fsync)"]} if args.only_aiws else RECEIVERS
    try:
        files = make_ct_series(root / "ct", args.slices, args.size, args.size)
        mb = sum(f.stat().st_size for f in files) / 2**20
        print(f"series: {args.slices} x {args.size}^2 CT, {mb:.0f} MiB; TCP_NODELAY=1 for dcmtk and Orthanc; "
              f"median time and highest peak RSS of {args.repeat} runs; storescp does not fsync")
        for associations in (1, args.parallel):
            results = {name: measure(root, name, fn, files, associations, args.repeat, args.max_pdu)
                       for name, fn in receivers.items()}
            report(f"{args.slices} images on {associations} association(s)", args.slices, results)
        if args.big_mb:
            big = [big_instance(root / "big", args.big_mb)]
            size = big[0].stat().st_size / 2**20
            results = {name: measure(root, name, fn, big, 1, 1, args.max_pdu) for name, fn in receivers.items()}
            report(f"one {size:.0f} MiB instance on 1 association (one run)", 1, results)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
