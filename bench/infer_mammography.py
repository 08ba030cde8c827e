"""Mammography inference benchmark: a four-view phantom screening study sent into AIWS (dcmtk ``storescu``),
from study complete to results sent to the PACS (Orthanc), with the seconds and share of each pipeline stage
(load, preprocess, network, analysis, writing) and of what the service adds (queue, sending).

Run: ``.venv/bin/python bench/infer_mammography.py [--repeat 2]`` (needs triton_repo/mammo_detector).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from peers import DCMTK_ENV, AiwsProcess, Orthanc, wait_for  # noqa: E402

from training.mammography.dicom import MgStudyOptions, write_exam  # noqa: E402
from training.mammography.phantom import PhantomConfig, make_exam  # noqa: E402

CONFIG = """
[dicom]
ae_title = "AIWS"
host = "127.0.0.1"
port = {dicom_port}
require_known_source = false
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = ORTHANC_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "mammography"
send_to = ["pacs"]
[routes.match]
Modality = "MG"
[runtime]
model_repository = "REPO"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 64
"""
STAGES = ("load", "preprocess", "network", "analysis", "writing")


def one_study(aiws: AiwsProcess, work: Path, seed: int, spacing_mm: float) -> dict[str, float]:
    exam = make_exam(seed, PhantomConfig(spacing_mm=spacing_mm, lesion_rate=0.5))
    files = write_exam(exam, work / f"s{seed}", MgStudyOptions(magnification=1.0))
    study_uid = str(__import__("pydicom").dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    out = subprocess.run(["storescu", "-aet", "BENCH", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                          *[str(f) for f in files]], capture_output=True, text=True, env=DCMTK_ENV)
    if out.returncode != 0:
        raise RuntimeError(f"storescu failed: {out.stderr[-500:]}")

    def sent() -> dict | None:
        study = aiws.api(f"/api/studies/{study_uid}")
        if study["jobs"] and study["jobs"][0]["state"] == "failed":
            raise RuntimeError(f"job failed: {study['jobs'][0]['error']}")
        done = [s for s in study["sends"] if s["state"] == "done"]
        return study if done else None

    study = wait_for(sent, timeout=600, interval=0.2, what="results sent")
    job, send = study["jobs"][0], study["sends"][0]
    figures = {"complete_to_sent": send["done_at"] - study["completed_at"],
               "queue": job["started_at"] - study["completed_at"],
               "job": job["finished_at"] - job["started_at"],
               "sending": send["done_at"] - job["finished_at"]}
    figures.update({k: float(v) for k, v in job["summary"]["timings_s"].items()})
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--spacing-mm", type=float, default=0.1, help="pixel spacing of the phantom images")
    args = parser.parse_args()
    if not (ROOT / "triton_repo" / "mammo_detector").is_dir():
        print("triton_repo/mammo_detector is missing: train and export the model first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="aiws-bench-mg-") as tmp:
        work = Path(tmp)
        orthanc = Orthanc(work / "orthanc").start()
        aiws = AiwsProcess(work / "aiws", CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)).replace(
            "REPO", str(ROOT / "triton_repo")))
        (work / "aiws").mkdir()
        aiws.start()
        try:
            runs = [one_study(aiws, work, 40_000 + i, args.spacing_mm) for i in range(args.repeat + 1)][1:]
        finally:
            aiws.stop()
            orthanc.stop()
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = median["complete_to_sent"]
    print(f"mammography, 4-view study ({args.spacing_mm} mm pixels), median of {len(runs)} (first run discarded)")
    print(f"  study complete -> results sent: {total:6.2f} s")
    for key in ("queue", *STAGES, "sending"):
        if key in median:
            print(f"    {key:<11s} {median[key]:6.2f} s  {100 * median[key] / total:5.1f} %")
    rest = total - median["queue"] - median["sending"] - sum(median.get(k, 0.0) for k in STAGES)
    print(f"    {'other':<11s} {rest:6.2f} s  {100 * rest / total:5.1f} %  (job bookkeeping, process start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
