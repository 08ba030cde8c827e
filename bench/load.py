"""Load benchmark: one generated 300-slice 512×512 CT series loaded to a volume, in one run, by
(a) ours (:func:`imaging.volume.load_volume`), (b) SimpleITK ``ImageSeriesReader`` (GDCM, with its own
file sorting), (c) MONAI ``LoadImage`` with the pydicom reader, and the baseline (d) bare pydicom:
``dcmread(f).pixel_array`` for every file (no sorting, no rescale, no stacking) — the limit.

Each load runs in a fresh process (as a worker process loads a study), repetitions interleaved.
Prints the median time of each, the ratios to the baseline and to ours, whether the target holds (ours
fastest, and within 1.5× of the bare pydicom cost), and the time to write SR + SEG + SC for a
20-finding result on that series.

Then ours beside highdicom's ``get_volume_from_series`` / ``Image.get_volume`` (in-process, median of
``--repeat``; dcmread included on both sides) on the 300-slice series, the orientation test series of
``tests/imaging`` (axial head/feet first, coronal, sagittal, oblique), a legacy-converted enhanced CT,
pydicom's enhanced CT sample and an enhanced MR cine (several phases per position), each with whether
highdicom's volume is ours (the same LPS position of every voxel, the same voxel values).

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

from factories import make_ct_series
from imaging.capture import write_summary_capture
from imaging.provenance import save_dataset
from imaging.results import Code, Finding, Measurement, ResultContext, Segment
from imaging.seg import write_seg
from imaging.sr import write_sr
from imaging.volume import Volume, load_phases, load_volume

TARGET_RATIO = 1.5
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "imaging"))


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


def highdicom_volume(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(voxels, affine) by highdicom: a multi-frame file through ``imread(...).get_volume``, a series of
    single-frame files through ``get_volume_from_series``; float32 with the modality transform applied."""
    import highdicom as hd
    from pydicom import dcmread

    if len(paths) == 1:
        volume = hd.imread(paths[0]).get_volume(dtype=np.float32)
    else:
        volume = hd.get_volume_from_series([dcmread(p) for p in paths], dtype=np.float32)
    return volume.array, volume.affine


def same_volume(ours_v: Volume, voxels: np.ndarray, affine: np.ndarray) -> str:
    """'yes' when highdicom's (voxels, affine) put the same values at the same LPS positions as ours (the
    array may run the other way along an axis, with the affine to match); otherwise what differs."""
    if voxels.shape != ours_v.voxels.shape:
        return f"NO: shape {voxels.shape} vs ours {ours_v.voxels.shape}"
    for flips in np.ndindex(2, 2, 2):
        index = np.diag([1.0, 1.0, 1.0, 1.0])
        for axis, flip in enumerate(flips):
            if flip:
                index[axis, axis], index[axis, 3] = -1.0, voxels.shape[axis] - 1
        if np.allclose(affine @ index, ours_v.affine, atol=1e-3):
            flipped = np.flip(voxels, [a for a, f in enumerate(flips) if f])
            equal = np.allclose(flipped, ours_v.voxels, atol=1e-3)
            how = "as stored" if not any(flips) else "flipped along " + "".join("krc"[a] for a, f in enumerate(flips) if f)
            return f"yes ({how})" if equal else f"NO: same geometry ({how}), voxels differ"
    return "NO: affine differs"


def comparison_cases(work: Path, large: list[Path]) -> dict[str, list[Path]]:
    """The series to compare on: the large CT, the orientation cases, three enhanced multi-frame files."""
    import highdicom as hd
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from factories import make_enhanced_mr_cine
    from imaging_helpers import CASES, write_phantom

    cases = {f"CT {len(large)} slices": large}
    for name, (orientation, position) in CASES.items():
        cases[name] = write_phantom(work / name, orientation, position).paths
    phantom = write_phantom(work / "for-enhanced", CASES["oblique"][0], shape=(40, 64, 64))
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage([dcmread(p) for p in phantom.paths], generate_uid(), 2,
                                                        generate_uid(), 1)
    enhanced.save_as(work / "enhanced-ct.dcm")
    cases["legacy-converted enhanced CT (oblique)"] = [work / "enhanced-ct.dcm"]
    cases["enhanced CT sample (pydicom-data)"] = [Path(get_testdata_file("eCT_Supplemental.dcm"))]
    cases["enhanced MR cine, 3 positions x 4 phases"] = [make_enhanced_mr_cine(work / "cine.dcm", 3, 4, 24, 28)]
    return cases


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare_with_highdicom(work: Path, large: list[Path], repeat: int) -> None:
    """Print ours and highdicom's median load time per case, the ratio, and whether the volumes agree."""
    import highdicom  # noqa: F401  (imported before timing, as ours is)

    print(f"\n{'series -> volume':42s} {'ours s':>8s} {'highdicom s':>12s} {'hd/ours':>8s}  highdicom's volume is ours")
    for name, paths in comparison_cases(work, large).items():
        mine_s = median_seconds(lambda: load_phases(paths), repeat)
        phases = load_phases(paths)  # one volume, or one per phase where positions repeat (cine)
        try:
            voxels, affine = highdicom_volume(paths)
        except (ValueError, RuntimeError) as exc:
            print(f"{name:42s} {mine_s:8.3f} {'-':>12s} {'-':>8s}  highdicom: {type(exc).__name__} "
                  f"({str(exc)[:60]}); ours: {len(phases)} volumes, one per phase")
            continue
        theirs_s = median_seconds(lambda: highdicom_volume(paths), repeat)
        verdict = same_volume(phases[0], voxels, affine) if len(phases) == 1 else f"ours: {len(phases)} phases"
        print(f"{name:42s} {mine_s:8.3f} {theirs_s:12.3f} {theirs_s / mine_s:8.2f}  {verdict}")


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
        compare_with_highdicom(work / "compare", files, args.repeat)
        return 0


if __name__ == "__main__":
    sys.exit(main())
