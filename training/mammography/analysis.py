"""Failure analysis of the shipped mammography model on phantom families A and B (issue 28).

``python -m training.mammography.analysis --family both --seeds 3`` runs the service's own per-view
analysis (:func:`models.mammography.analysis.analyse_view`, ONNX Runtime, the card's operating point) on
a few unseen exams of each family and prints, per family:

* the density confusion (true exam category -> ours) and agreement / within one grade;
* mass sensitivity per lesion view and false-positive marks per image at the operating point;
* WHERE each false-positive mark lies, from the phantom's truth maps: ``pectoral`` (on or within 3 mm of
  the true pectoral muscle), ``skin/nipple`` (within 5 mm of the skin line or 10 mm of the nipple),
  ``calcification`` (on a truth calcification box, or a bright sub-millimetre spot: white top-hat of
  the view above 3x the breast's noise — family B draws benign and vascular calcifications without truth
  masks), ``glandular`` (on true dense tissue) or ``fat``;
* marks in a breast without any lesion (the "wrong breast" of a single-sided exam) — every such mark is
  also a false positive;
* the network's mass heatmap: mean and 99th percentile of the mass logit over lesion-free fat, lesion-free
  glandular tissue and the pectoral muscle (a network that fires on glandular tissue shows it here).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from models.mammography.analysis import Predict, ViewAnalysis, analyse_view
from models.mammography.density import CATEGORIES, birads_density, exam_density
from models.mammography.detection import Calibration, Region
from training.mammography.evaluate import hits
from training.mammography.phantom import PHANTOM_WINDOW, PhantomExam, PhantomView, make_exam, to_working

ROOT = Path(__file__).resolve().parents[2]
PLACES = ("pectoral", "skin/nipple", "calcification", "glandular", "fat")
#: Evaluation seeds (unseen: training uses < 10 000, calibration 20 000 + ...).
SEED_START = 10_000


class _Capture:
    """A predict callable that keeps the last logits it returned."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.last: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.last = np.asarray(self.predict(x))
        return self.last


@dataclass
class FamilyFigures:
    family: str
    exams: int = 0
    images: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (truth, ours) per exam
    breast_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    mass_views: int = 0
    mass_hit: int = 0
    fp_marks: Counter[str] = field(default_factory=Counter)  # place -> count (mass marks)
    calc_fp_marks: int = 0
    lesion_free_breast_marks: int = 0
    lesion_free_breasts: int = 0
    heat: dict[str, list[float]] = field(default_factory=lambda: {"fat": [], "glandular": [], "pectoral": []})
    heat_p99: dict[str, list[float]] = field(default_factory=lambda: {"fat": [], "glandular": [], "pectoral": []})
    percent_errors: list[float] = field(default_factory=list)
    fp_logits: list[float] = field(default_factory=list)  # every unmarked-or-marked false mass candidate
    hit_logits: list[float] = field(default_factory=list)  # per mass lesion view, best hitting candidate

    def froc(self, fp_per_image: float) -> tuple[float, float]:
        """(threshold, sensitivity) with at most *fp_per_image* mass false positives per image on these views:
        what a recalibrated operating point could reach at best (fitted on the same views: optimistic)."""
        allowed = int(np.floor(fp_per_image * self.images))
        ordered = sorted(self.fp_logits, reverse=True)
        thr = float(np.nextafter(ordered[allowed], np.inf)) if len(ordered) > allowed else -np.inf
        hit = np.asarray(self.hit_logits)
        return thr, float(np.mean(hit >= thr)) if hit.size else float("nan")

    def lines(self) -> list[str]:
        order = "abcd"
        n = max(1, sum(self.confusion.values()))
        agree = sum(v for (t, o), v in self.confusion.items() if t == o) / n
        one = sum(v for (t, o), v in self.confusion.items() if abs(order.index(t) - order.index(o)) <= 1) / n
        fp = sum(self.fp_marks.values())
        out = [f"family {self.family}: {self.exams} exams, {self.images} images",
               f"  density (exam) agreement {agree:.0%}, within one grade {one:.0%}; percent dense MAE "
               f"{np.mean(self.percent_errors) if self.percent_errors else float('nan'):.1f} points (per view)",
               "  confusion truth->ours (exam): " + ", ".join(f"{t}->{o} {v}" for (t, o), v in sorted(
                   self.confusion.items())),
               "  confusion truth->ours (breast): " + ", ".join(f"{t}->{o} {v}" for (t, o), v in sorted(
                   self.breast_confusion.items())),
               f"  mass sensitivity {self.mass_hit}/{self.mass_views} lesion views "
               f"({self.mass_hit / max(1, self.mass_views):.0%}); FP mass marks {fp} = "
               f"{fp / max(1, self.images):.2f}/image; FP calcification marks {self.calc_fp_marks}",
               "  FP mass marks by place: " + ", ".join(f"{p} {self.fp_marks.get(p, 0)}" for p in PLACES),
               "  best mass sensitivity at <= 0.5 FP/image with a threshold fitted on these views: "
               "{1:.0%} (logit {0:.2f})".format(*self.froc(0.5)),
               f"  marks in lesion-free breasts: {self.lesion_free_breast_marks} over {self.lesion_free_breasts} "
               f"breasts",
               "  mass logit mean / p99 over: " + ", ".join(
                   f"{k} {np.mean(v) if v else float('nan'):.2f} / {np.mean(self.heat_p99[k]) if v else float('nan'):.2f}"
                   for k, v in self.heat.items())]
        return out


def place_of(region: Region, pv: PhantomView, bright: np.ndarray) -> str:
    """Where a mark's centre lies on the truth maps of its (working-resolution) view."""
    r, c = (int(np.clip(round(v - 0.5), 0, n - 1)) for v, n in zip(region.centre_rc, pv.image.shape, strict=True))
    mm = pv.spacing_mm
    pect = ndimage.binary_dilation(pv.pectoral, iterations=max(1, int(3.0 / mm))) if pv.pectoral.any() else pv.pectoral
    if pect[r, c]:
        return "pectoral"
    skin_mm = ndimage.distance_transform_edt(np.pad(pv.breast, ((0, 0), (1, 0)), mode="edge"))[:, 1:] * mm
    if skin_mm[r, c] < 5.0 or np.hypot(r - pv.nipple_rc[0], c - pv.nipple_rc[1]) * mm < 10.0:
        return "skin/nipple"
    r0, c0, r1, c1 = (int(v) for v in region.box)
    if pv.calc[r, c] or bright[max(0, r0):r1 + 1, max(0, c0):c1 + 1].any():
        return "calcification"
    return "glandular" if pv.dense[r, c] else "fat"


def bright_spots(pv: PhantomView) -> np.ndarray:
    """Sub-millimetre bright spots (calcification-like): white top-hat above 3x the breast's noise."""
    img = pv.image.astype(np.float32)
    top = img - ndimage.grey_opening(img, size=(int(1.5 / pv.spacing_mm) | 1,) * 2)
    inner = ndimage.binary_erosion(pv.breast, iterations=int(3 / pv.spacing_mm))
    if not inner.any():
        return np.zeros_like(pv.breast)
    noise = float(np.median(np.abs(top[inner] - np.median(top[inner])))) * 1.4826 + 1e-6
    return inner & (top > 3.0 * noise + np.percentile(top[inner], 99.5))


def _record_view(fig: FamilyFigures, pv: PhantomView, a: ViewAnalysis, logits: np.ndarray,
                 calibration: Calibration, lesion_free_breast: bool) -> None:
    fig.images += 1
    fig.percent_errors.append(abs(a.percent_dense - pv.percent_dense))
    marked = [c for c in a.candidates if calibration.marked(c)]
    masses = [t for t in pv.lesions if t.kind == "mass"]
    fig.mass_views += len(masses)
    fig.mass_hit += sum(any(c.kind == "mass" and hits(c, t, pv.spacing_mm) for c in marked) for t in masses)
    mass_candidates = [c for c in a.candidates if c.kind == "mass"]
    fig.hit_logits += [max((c.logit for c in mass_candidates if hits(c, t, pv.spacing_mm)), default=-np.inf)
                       for t in masses]
    fig.fp_logits += [c.logit for c in mass_candidates if not any(hits(c, t, pv.spacing_mm) for t in pv.lesions)]
    bright = bright_spots(pv)
    for c in marked:
        if any(hits(c, t, pv.spacing_mm) for t in pv.lesions):
            continue
        if c.kind == "mass":
            fig.fp_marks[place_of(c, pv, bright)] += 1
        else:
            fig.calc_fp_marks += 1
        fig.lesion_free_breast_marks += lesion_free_breast
    mass_logit = logits[1, : pv.image.shape[0], : pv.image.shape[1]]
    lesion = ndimage.binary_dilation(pv.mass | pv.calc, iterations=int(5 / pv.spacing_mm))
    tissue = pv.breast & ~pv.pectoral & ~lesion
    for name, where in (("fat", tissue & ~pv.dense), ("glandular", tissue & pv.dense), ("pectoral", pv.pectoral)):
        if where.any():
            fig.heat[name].append(float(mass_logit[where].mean()))
            fig.heat_p99[name].append(float(np.percentile(mass_logit[where], 99)))


def analyse_family(family: str, seeds: Sequence[int], predict: Predict, calibration: Calibration,
                   make: Callable[[int], PhantomExam], relative: bool = False) -> FamilyFigures:
    """The figures of :class:`FamilyFigures` on the exams of *seeds* (``make(seed)``); *relative*: the version's
    network input is breast-relative (its card's ``network_input``)."""
    fig = FamilyFigures(family)
    capture = _Capture(predict)
    for seed in seeds:
        exam = make(seed)
        window = getattr(exam, "window", PHANTOM_WINDOW)
        fig.exams += 1
        per_view = {}
        for key, native in exam.views.items():
            pv = to_working(native)
            a = analyse_view(pv.image, pv.laterality, pv.view, window, capture, relative)
            per_view[key] = a.percent_dense
            free = not any(v.lesions for (lat, _), v in exam.views.items() if lat == key[0])
            _record_view(fig, pv, a, np.asarray(capture.last)[0], calibration, free)
        fig.lesion_free_breasts += sum(1 for side in ("L", "R") if not any(
            v.lesions for (lat, _), v in exam.views.items() if lat == side))
        ours = exam_density(per_view)
        truth = {side: birads_density(pd) for side, pd in exam.breast_percent_dense.items()}
        fig.confusion[(max(truth.values()), ours.category)] += 1
        for b in ours.breasts:
            fig.breast_confusion[(truth[b.laterality], b.category)] += 1
    return fig


def run(families: Sequence[str], count: int, repo: Path, version: int | None) -> list[FamilyFigures]:
    """Run the analysis with the published model (ONNX Runtime, one thread) on *count* exams per family."""
    from models.mammography.inference import load_calibration, relative_input, runtime_predictor
    from models.runtime import RuntimeSettings, make_runtime
    from training.mammography.phantom_b import make_exam_b

    makers: dict[str, Callable[[int], PhantomExam]] = {"a": make_exam, "b": make_exam_b}
    out = []
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu", intra_op_threads=1)) as runtime:
        version = version or runtime.resolve_version("mammo_detector")
        predict = runtime_predictor(runtime, "mammo_detector", version)
        calibration = load_calibration(runtime, "mammo_detector", version)
        seeds = range(SEED_START, SEED_START + count)
        for family in families:
            out.append(analyse_family(family, seeds, predict, calibration, makers[family],
                                      relative_input(runtime, "mammo_detector", version)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.mammography.analysis")
    parser.add_argument("--family", choices=("a", "b", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=3, help="exams per family (seeds 10000 ...)")
    parser.add_argument("--repo", type=Path, default=ROOT / "triton_repo")
    parser.add_argument("--version", type=int, default=None)
    args = parser.parse_args(argv)
    families = ("a", "b") if args.family == "both" else (args.family,)
    for fig in run(families, args.seeds, args.repo, args.version):
        sys.stdout.write("\n".join(fig.lines()) + "\n")
    sys.stdout.write(f"BI-RADS density categories: {', '.join(CATEGORIES)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
