"""Size a machine for AIWS: run one pipeline on one study, as a worker process does, and print its figures.

    python deploy/measure_study.py lung_nodules /path/to/study/  [--config aiws.toml]

Prints one line: the pipeline, the study's files and megabytes (what the spool holds while the study
waits), the results' megabytes (the outbox), the wall seconds and the peak resident memory of this
process (a worker runs one job at a time, so a worker needs about this much). Every file in the folder
counts as part of the study and every series is offered to the pipeline, which picks what it
takes, as it does for the series a route sends it. docs/deployment.md ("Sizing") lists figures
measured with it.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread

from aiws.config import load_config
from aiws.pipelines import PIPELINES
from imaging.backend import ArrayBackend
from models.pipeline import PipelineRequest


def series_of(folder: Path) -> tuple[str, dict[str, tuple[Path, ...]]]:
    """(StudyInstanceUID, SeriesInstanceUID -> files) of the DICOM files under *folder*."""
    series: dict[str, list[Path]] = defaultdict(list)
    study = ""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ds = dcmread(path, stop_before_pixels=True)
        study = str(ds.StudyInstanceUID)
        series[str(ds.SeriesInstanceUID)].append(path)
    return study, {uid: tuple(files) for uid, files in series.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", choices=sorted(PIPELINES))
    parser.add_argument("study", type=Path, help="a folder with the DICOM files of one study")
    parser.add_argument("--config", type=Path, default=None, help="aiws.toml (its [runtime], [imaging], [pipelines])")
    args = parser.parse_args(argv)
    config = load_config(args.config, os.environ)
    study_uid, series = series_of(args.study)
    in_bytes = sum(p.stat().st_size for files in series.values() for p in files)
    pipeline = PIPELINES[args.pipeline](config, ArrayBackend.select(config.imaging.array_backend))
    with tempfile.TemporaryDirectory(prefix="aiws-measure-") as out:
        request = PipelineRequest(study_uid=study_uid, series=series, out_dir=Path(out),
                                  uid_root=config.imaging.uid_root)
        start = time.perf_counter()
        output = pipeline.run(request)
        seconds = time.perf_counter() - start
        out_bytes = sum(f.path.stat().st_size for f in output.files)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    n_files = sum(len(files) for files in series.values())
    sys.stdout.write(f"{args.pipeline}: {n_files} files, {in_bytes / 1e6:.2f} MB in, {out_bytes / 1e6:.2f} MB out, "
                     f"{seconds:.1f} s, peak RSS {peak_mb:.0f} MiB\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
