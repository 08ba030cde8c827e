"""Mammography inference benchmark: a four-view phantom screening study sent into AIWS (dcmtk ``storescu``),
from study complete to results sent to the PACS (Orthanc), with the seconds and share of each pipeline stage
(load, preprocess, network, analysis, writing) and of what the service adds (queue, sending).

Run: ``.venv/bin/python bench/infer_mammography.py [--repeat 2]`` (needs triton_repo/mammo_detector).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _e2e import ROOT, report, send_and_time, service

from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam

STAGES = ("load", "preprocess", "network", "analysis", "writing")


def exam_files(work: Path, seed: int, spacing_mm: float) -> list[Path]:
    exam = make_exam(seed, PhantomConfig(spacing_mm=spacing_mm, lesion_rate=0.5))
    return write_exam(exam, work / f"s{seed}", MgStudyOptions(magnification=1.0))


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
        with service(work, [("mammography", "MG")]) as aiws:
            runs = [send_and_time(aiws, exam_files(work, 40_000 + i, args.spacing_mm))
                    for i in range(args.repeat + 1)][1:]
    report(f"mammography, 4-view study ({args.spacing_mm} mm pixels)", runs, STAGES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
