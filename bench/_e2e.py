"""Shared by the inference benchmarks: a real service (``aiws serve``) routing to a real PACS (Orthanc), a
study sent with dcmtk ``storescu``, and the time from "study complete" to "results sent" with the share of
each pipeline stage and of what the service adds (queue, sending).

Baseline named in every report: the pipeline job's own wall time; the rest is service overhead.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "tests"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from peers import DCMTK_ENV, AiwsProcess, Orthanc, wait_for  # noqa: E402
from pipeline_e2e import pipeline_config, study_sent  # noqa: E402


@contextmanager
def service(work: Path, routes: Sequence[tuple[str, str]]) -> Iterator[AiwsProcess]:
    """Orthanc and ``aiws serve`` (any calling AE accepted) routing each (pipeline, Modality) to Orthanc."""
    orthanc = Orthanc(work / "orthanc").start()
    (work / "aiws").mkdir()
    aiws = AiwsProcess(work / "aiws", pipeline_config(routes, orthanc.dicom_port, known_source=False))
    try:
        aiws.start()
        yield aiws
    finally:
        aiws.stop()
        orthanc.stop()


def send_and_time(aiws: AiwsProcess, files: Sequence[Path], timeout_s: float = 900) -> dict[str, float]:
    """Send *files* (one study) with ``storescu``; seconds from study complete to the last result sent,
    split into queue, the job (and its stages from the job summary's ``timings_s``) and sending.

    Raises:
        RuntimeError: storescu failed; AssertionError: the job failed.
    """
    from pydicom import dcmread

    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    out = subprocess.run(["storescu", "-aet", "BENCH", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                          *[str(f) for f in files]], capture_output=True, text=True, env=DCMTK_ENV)
    if out.returncode != 0:
        raise RuntimeError(f"storescu failed: {out.stderr[-500:]}")
    study = wait_for(lambda: study_sent(aiws, study_uid), timeout=timeout_s, interval=0.2, what="results sent")
    job = study["jobs"][0]
    last_send = max(s["done_at"] for s in study["sends"])
    figures = {"complete_to_sent": last_send - study["completed_at"],
               "queue": job["started_at"] - study["completed_at"],
               "job": job["finished_at"] - job["started_at"],
               "sending": last_send - job["finished_at"]}
    figures.update({k: float(v) for k, v in job["summary"]["timings_s"].items()})
    return figures


def report(name: str, runs: Sequence[dict[str, float]], stages: Sequence[str]) -> None:
    """Print the medians of *runs*: total, then queue, each stage, sending and the rest, in s and % of the
    median total (medians of parts need not add up to the median total)."""
    rows = [{**r, "other": r["complete_to_sent"] - r["queue"] - r["sending"] - sum(r.get(k, 0.0) for k in stages)}
            for r in runs]  # per run, so that the medians below are each of a real quantity
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    total = median["complete_to_sent"]
    print(f"{name}: median of {len(runs)} (first run discarded)")
    print(f"  study complete -> results sent: {total:6.2f} s (pipeline job {median['job']:.2f} s = baseline)")
    for key in ("queue", *stages, "sending"):
        if key in median:
            print(f"    {key:<11s} {median[key]:6.2f} s  {100 * median[key] / total:5.1f} %")
    print(f"    {'other':<11s} {median['other']:6.2f} s  {100 * median['other'] / total:5.1f} %  "
          "(job bookkeeping, series grouping)")
    print(f"  service overhead / pipeline job: {total / max(median['job'], 1e-9):.2f}x")
