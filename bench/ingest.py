"""Ingest benchmark: one 300-slice 512×512 CT series sent with dcmtk ``storescu`` over loopback into
(a) AIWS (fsync before every acknowledgement), (b) dcmtk ``storescp`` (no fsync), (c) Orthanc,
in the same run. Prints seconds, images/s and the ratios AIWS/storescp and AIWS/Orthanc.

Run: ``make bench`` or ``.venv/bin/python bench/ingest.py [--slices 300] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import make_ct_series  # noqa: E402
from peers import DCMTK_ENV, AiwsProcess, Orthanc, free_port, wait_for  # noqa: E402

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


def send(port: int, called: str, files: list[Path]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(["storescu", "-aet", "BENCH", "-aec", called, "127.0.0.1", str(port),
                          *[str(f) for f in files]], capture_output=True, text=True, env=DCMTK_ENV)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"storescu into {called} failed: {out.stdout[-500:]}{out.stderr[-500:]}")
    return seconds


def run_aiws(work: Path, files: list[Path], max_pdu: int = 1_048_576) -> float:
    aiws = AiwsProcess(work, AIWS_CONFIG.replace("MAX_PDU", str(max_pdu))).start()
    try:
        seconds = send(aiws.dicom_port, "AIWS", files)
        n = aiws.api("/health")["counts"]["instances"]["total"]
        if n != len(files):
            raise RuntimeError(f"AIWS ledger has {n} instances, expected {len(files)}")
        return seconds
    finally:
        aiws.stop()


def run_storescp(work: Path, files: list[Path]) -> float:
    port = free_port()
    out = work / "out"
    out.mkdir()
    proc = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(out), str(port)], env=DCMTK_ENV)
    try:
        wait_for(lambda: subprocess.run(["echoscu", "-aec", "STORESCP", "127.0.0.1", str(port)],
                                        capture_output=True, env=DCMTK_ENV).returncode == 0, what="storescp")
        return send(port, "STORESCP", files)
    finally:
        proc.terminate()
        proc.wait()


def run_orthanc(work: Path, files: list[Path]) -> float:
    orthanc = Orthanc(work).start()
    try:
        seconds = send(orthanc.dicom_port, "ORTHANC", files)
        n = orthanc.get("/statistics")["CountInstances"]
        if n != len(files):
            raise RuntimeError(f"Orthanc has {n} instances, expected {len(files)}")
        return seconds
    finally:
        orthanc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only-aiws", action="store_true", help="skip the baselines")
    parser.add_argument("--max-pdu", type=int, default=1_048_576, help="AIWS maximum PDU size")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aiws-bench-ingest-"))
    try:
        files = make_ct_series(root / "ct", args.slices, args.size, args.size)
        mb = sum(f.stat().st_size for f in files) / 2**20
        print(f"series: {args.slices} × {args.size}² CT, {mb:.0f} MiB; TCP_NODELAY=1 for dcmtk and Orthanc;"
              f" median of {args.repeat} runs")
        receivers: dict[str, Callable[[Path, list[Path]], float]] = {
            "AIWS (fsync)": lambda w, f: run_aiws(w, f, args.max_pdu)}
        if not args.only_aiws:
            receivers |= {"dcmtk storescp": run_storescp, "Orthanc": run_orthanc}
        results: dict[str, float] = {}
        for name, fn in receivers.items():
            times = []
            for i in range(args.repeat):
                work = root / f"{name.split()[0]}-{i}"
                work.mkdir()
                times.append(fn(work, files))
                shutil.rmtree(work)
            results[name] = statistics.median(times)
        print(f"{'receiver':<16} {'seconds':>8} {'images/s':>9}")
        for name, s in results.items():
            print(f"{name:<16} {s:8.2f} {args.slices / s:9.0f}")
        if args.only_aiws:
            return 0
        ours = results["AIWS (fsync)"]
        print(f"ratio AIWS/storescp = {ours / results['dcmtk storescp']:.2f} (target <= 1.5)")
        print(f"ratio AIWS/Orthanc  = {ours / results['Orthanc']:.2f} (target <= 1.0)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
