"""Cardiac inference benchmark: a phantom calcium-score CT (coronary_ct) and a phantom short-axis cine MR
(cardiac_mri) sent into AIWS (dcmtk ``storescu``); from study complete to results sent to the PACS (Orthanc),
with the seconds and share of each pipeline stage (load, network, measures, writing) and of what the service
adds (queue, sending). Baseline named in the output: the job's own wall time (the rest is service overhead).

Run: ``.venv/bin/python bench/infer_cardiac_coronary.py [--repeat 2]``
(needs triton_repo/coronary_calcium_labeller and triton_repo/cardiac_cine_segmenter).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from peers import DCMTK_ENV, AiwsProcess, Orthanc, wait_for  # noqa: E402

from training.cardiac_mri import dicom as cine_dicom  # noqa: E402
from training.cardiac_mri.phantom import make_params, render_all  # noqa: E402
from training.coronary_ct import dicom as ct_dicom  # noqa: E402
from training.coronary_ct.phantom import make_phantom  # noqa: E402

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
pipeline = "coronary_ct"
send_to = ["pacs"]
[routes.match]
Modality = "CT"
[[routes]]
pipeline = "cardiac_mri"
send_to = ["pacs"]
[routes.match]
Modality = "MR"
[runtime]
model_repository = "REPO"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 64
"""
STAGES = ("load", "network", "measures", "writing")
MODELS = ("coronary_calcium_labeller", "cardiac_cine_segmenter")


def coronary_study(work: Path, seed: int) -> list[Path]:
    return ct_dicom.write_series(make_phantom(seed), work / f"ct{seed}")


def cardiac_study(work: Path, seed: int) -> list[Path]:
    params = make_params(seed)
    images, _ = render_all(params)
    return cine_dicom.write_series(params, images, work / f"mr{seed}")


def one_study(aiws: AiwsProcess, files: list[Path]) -> dict[str, float]:
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
        return study if done and len(done) == len(study["sends"]) else None

    study = wait_for(sent, timeout=900, interval=0.2, what="results sent")
    job = study["jobs"][0]
    last_send = max(s["done_at"] for s in study["sends"])
    figures = {"complete_to_sent": last_send - study["completed_at"],
               "queue": job["started_at"] - study["completed_at"],
               "job": job["finished_at"] - job["started_at"],
               "sending": last_send - job["finished_at"]}
    figures.update({k: float(v) for k, v in job["summary"]["timings_s"].items()})
    return figures


def report(name: str, runs: list[dict[str, float]]) -> None:
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = median["complete_to_sent"]
    print(f"{name}: median of {len(runs)} (first run discarded)")
    print(f"  study complete -> results sent: {total:6.2f} s (pipeline job {median['job']:.2f} s = baseline)")
    for key in ("queue", *STAGES, "sending"):
        if key in median:
            print(f"    {key:<9s} {median[key]:6.2f} s  {100 * median[key] / total:5.1f} %")
    rest = total - median["queue"] - median["sending"] - sum(median.get(k, 0.0) for k in STAGES)
    print(f"    {'other':<9s} {rest:6.2f} s  {100 * rest / total:5.1f} %  (job bookkeeping, series grouping)")
    print(f"  service overhead / pipeline job: {total / max(median['job'], 1e-9):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    missing = [m for m in MODELS if not (ROOT / "triton_repo" / m).is_dir()]
    if missing:
        print(f"triton_repo is missing {missing}: train and export the models first", file=sys.stderr)
        return 1
    studies: dict[str, Callable[[Path, int], list[Path]]] = {
        "coronary_ct (calcium-score CT phantom, 2.5-3 mm)": coronary_study,
        "cardiac_mri (short-axis cine phantom)": cardiac_study,
    }
    with tempfile.TemporaryDirectory(prefix="aiws-bench-cardiac-") as tmp:
        work = Path(tmp)
        orthanc = Orthanc(work / "orthanc").start()
        aiws = AiwsProcess(work / "aiws", CONFIG.replace("ORTHANC_PORT", str(orthanc.dicom_port)).replace(
            "REPO", str(ROOT / "triton_repo")))
        (work / "aiws").mkdir()
        aiws.start()
        try:
            results = {name: [one_study(aiws, make(work, 50_000 + i)) for i in range(args.repeat + 1)][1:]
                       for name, make in studies.items()}
        finally:
            aiws.stop()
            orthanc.stop()
    for name, runs in results.items():
        report(name, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
