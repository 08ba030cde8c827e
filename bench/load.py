"""Load benchmark: one generated 300-slice 512×512 CT series loaded to a volume, in one run, by
(a) ours (:func:`imaging.volume.load_volume`), (b) SimpleITK ``ImageSeriesReader`` (GDCM, with its own
file sorting), (c) MONAI ``LoadImage`` with the pydicom reader, and the baseline (d) bare pydicom:
``dcmread(f).pixel_array`` for every file (no sorting, no rescale, no stacking) — the limit.

Each load runs in a fresh process (as a worker process loads a study), repetitions interleaved.
Prints the median time of each, the ratios to the baseline and to ours, whether the target holds (ours
fastest, and within 1.5× of the bare pydicom cost), and the time to write SR + SEG + SC for a
20-finding result on that series.

Run: ``make bench`` or ``.venv/bin/python bench/load.py [--slices 300] [--size 512] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import make_ct_series  # noqa: E402

from imaging.capture import write_summary_capture  # noqa: E402
from imaging.provenance import save_dataset  # noqa: E402
from imaging.results import Code, Finding, Measurement, ResultContext, Segment  # noqa: E402
from imaging.seg import write_seg  # noqa: E402
from imaging.sr import write_sr  # noqa: E402
from imaging.volume import Volume, load_volume  # noqa: E402

TARGET_RATIO = 1.5


def bare_pydicom(files: list[Path]) -> object:
    from pydicom import dcmread

    return [dcmread(f).pixel_array for f in files]


def ours(files: list[Path]) -> Volume:
    return load_volume(files)


def simpleitk(files: list[Path]) -> object:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(files[0].parent)))
    return sitk.GetArrayFromImage(reader.Execute())


def monai(files: list[Path]) -> object:
    from monai.transforms import LoadImage

    return LoadImage(reader="PydicomReader", image_only=True)(str(files[0].parent))


LOADERS: dict[str, Callable[[list[Path]], object]] = {
    "bare pydicom (limit)": bare_pydicom, "ours (imaging)": ours,
    "SimpleITK ImageSeriesReader": simpleitk, "MONAI LoadImage (pydicom)": monai,
}


def child(name: str, directory: Path) -> None:
    """In a fresh process: import the loader's library (and let pydicom load its pixel handlers), then
    time one load of *directory*; print seconds."""
    files = sorted(directory.glob("*.dcm"), key=lambda p: hash(p.name))  # the readers must sort by themselves
    fn = LOADERS[name]
    if name.startswith("SimpleITK"):
        importlib.import_module("SimpleITK")
    elif name.startswith("MONAI"):
        importlib.import_module("monai.transforms")
    elif name.startswith("bare"):
        bare_pydicom(files[:1])  # pydicom imports its pixel handlers on first use: keep that out of the limit
    t0 = time.perf_counter()
    fn(files)
    print(f"{time.perf_counter() - t0:.6f}")


def timed(directory: Path, repeat: int) -> dict[str, float]:
    """Median seconds per loader, each load in a fresh process (as a worker loads a study: no warm
    allocator, no imports in the timing); repetitions interleaved so that load from other processes on
    the machine falls on every loader alike."""
    times: dict[str, list[float]] = {name: [] for name in LOADERS}
    for _ in range(repeat):
        for name in LOADERS:
            run = subprocess.run([sys.executable, __file__, "--child", name, str(directory)],
                                 capture_output=True, text=True, check=True)
            times[name].append(float(run.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in times.items()}


def sphere(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: int) -> np.ndarray:
    k, r, c = centre
    mask = np.zeros(shape, dtype=bool)
    kk, rr, cc = np.ogrid[k - radius:k + radius + 1, r - radius:r + radius + 1, c - radius:c + radius + 1]
    ball = (kk - k) ** 2 + (rr - r) ** 2 + (cc - c) ** 2 <= radius ** 2
    mask[k - radius:k + radius + 1, r - radius:r + radius + 1, c - radius:c + radius + 1] = ball
    return mask


def write_results(volume: Volume, out_dir: Path, n_findings: int = 20) -> tuple[float, dict[str, float]]:
    """Write SEG (one segment per finding), SR and SC for *n_findings* nodules; (total s, per object s)."""
    context = ResultContext(uid_root="2.25", pipeline="bench", model_version="1.0.0")
    nodule, lung = Code("27925004", "SCT", "Nodule"), Code("39607008", "SCT", "Lung")
    altered = Code("49755003", "SCT", "Morphologically Altered Structure")
    rng = np.random.default_rng(0)
    n, rows, cols = volume.shape
    segments, findings = [], []
    for i in range(n_findings):
        centre = (int(rng.integers(10, n - 10)), int(rng.integers(60, rows - 60)), int(rng.integers(60, cols - 60)))
        segments.append(Segment(f"Nodule {i + 1}", altered, nodule, sphere(volume.shape, centre, 4), f"nodule-{i + 1}"))
        findings.append(Finding(f"nodule-{i + 1}", nodule, lung,
                                (Measurement(Code("81827009", "SCT", "Diameter"), 6.0 + i, Code("mm", "UCUM", "mm")),),
                                segment_number=i + 1))
    times = {}
    t0 = time.perf_counter()
    seg = write_seg(volume, segments, context)
    save_dataset(seg, out_dir)
    times["SEG"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    save_dataset(write_sr(volume, findings, context, seg=seg), out_dir)
    times["SR"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    for sc in write_summary_capture(volume, findings, context, segments=segments):
        save_dataset(sc, out_dir)
    times["SC"] = time.perf_counter() - t2
    return time.perf_counter() - t0, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("LOADER", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="aiws-bench-load-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        files = make_ct_series(work / "series", args.slices, args.size, args.size, spacing=(0.7, 0.7, 1.0))
        print(f"generated {len(files)} slices of {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
        bare_pydicom(files)  # warm the page cache for everyone
        results = timed(files[0].parent, args.repeat)
        base, mine = results["bare pydicom (limit)"], results["ours (imaging)"]
        print(f"\n{'loader':32s} {'median s':>9s} {'x bare':>8s} {'x ours':>8s} {'MB/s':>8s}")
        megabytes = args.slices * args.size * args.size * 2 / 1e6
        for name, seconds in results.items():
            print(f"{name:32s} {seconds:9.3f} {seconds / base:8.2f} {seconds / mine:8.2f} {megabytes / seconds:8.0f}")
        others = [v for k, v in results.items() if k not in ("ours (imaging)", "bare pydicom (limit)")]
        fastest = mine <= min(others)
        within = mine <= TARGET_RATIO * base
        print(f"\ntarget: ours fastest of the three loaders: {'yes' if fastest else 'NO'}; "
              f"ours within {TARGET_RATIO}x of bare pydicom: {'yes' if within else 'NO'} ({mine / base:.2f}x)")
        volume = load_volume(files)
        total, parts = write_results(volume, work / "out")
        detail = ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
        print(f"write SR + SEG + SC for a 20-finding result: {total:.2f} s ({detail})")
        return 0


if __name__ == "__main__":
    sys.exit(main())
