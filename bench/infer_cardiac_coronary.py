"""Cardiac inference benchmark: a phantom calcium-score CT (coronary_ct) and a phantom short-axis cine MR
(cardiac_mri) sent into AIWS (dcmtk ``storescu``); from study complete to results sent to the PACS (Orthanc),
with the seconds and share of each pipeline stage (load, network, measures, writing) and of what the service
adds (queue, sending). Baseline named in the output: the job's own wall time (the rest is service overhead).

Run: ``.venv/bin/python bench/infer_cardiac_coronary.py [--repeat 2]``
(needs triton_repo/coronary_calcium_labeller and triton_repo/cardiac_cine_segmenter).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _e2e import ROOT, report, send_and_time, service

from training.cardiac_mri import dicom as cine_dicom
from training.cardiac_mri.phantom import make_params, render_all
from training.coronary_ct import dicom as ct_dicom
from training.coronary_ct.phantom import make_phantom

STAGES = ("load", "network", "measures", "writing")
MODELS = ("coronary_calcium_labeller", "cardiac_cine_segmenter")


def coronary_study(work: Path, seed: int) -> list[Path]:
    return ct_dicom.write_series(make_phantom(seed), work / f"ct{seed}")


def cardiac_study(work: Path, seed: int) -> list[Path]:
    params = make_params(seed)
    images, _ = render_all(params)
    return cine_dicom.write_series(params, images, work / f"mr{seed}")


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
        with service(work, [("coronary_ct", "CT"), ("cardiac_mri", "MR")]) as aiws:
            results = {name: [send_and_time(aiws, make(work, 50_000 + i)) for i in range(args.repeat + 1)][1:]
                       for name, make in studies.items()}
    for name, runs in results.items():
        report(name, runs, STAGES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
