"""Calibration and evaluation of the mammography model on phantom exams.

Both run the service's own analysis code (:mod:`models.mammography.analysis`) on phantom views,
with any ``predict`` callable (torch right after training, ONNX Runtime for the exported model).
Criteria (issue: quality bars on phantom seeds never used in training or calibration):
density category agreement >= 85 %; mass sensitivity >= 90 % at <= 0.5 false positives per image;
calcification-cluster sensitivity >= 85 %. Sensitivity is per lesion per view; a mark hits a lesion
when its centre lies in the lesion's box widened by 2 mm; a mark on any true lesion is not a false
positive.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from models.mammography.analysis import ExamAnalysis, Predict, ViewAnalysis, analyse_exam, analyse_view
from models.mammography.density import birads_density, exam_density
from models.mammography.detection import KINDS, MIN_LOGIT, Calibration, Platt, Region, decile_cut_points
from training.mammography.dataset import family_exam
from training.mammography.phantom import LesionTruth, PhantomConfig, to_working

LOGGER = logging.getLogger(__name__)

HIT_MARGIN_MM = 2.0
#: Platt scaling's L2 penalty (l2/2 × a²; the intercept is free): keeps the slope finite on separable data.
PLATT_L2 = 1e-3
BARS = {"density_agreement": 0.85, "mass_sensitivity": 0.90, "mass_fp_per_image": 0.5,
        "calcification_sensitivity": 0.85}


@dataclass(frozen=True)
class ViewRecord:
    laterality: str
    view: str
    spacing_mm: float
    percent_dense: float
    true_percent_dense: float
    candidates: tuple[Region, ...]
    truths: tuple[LesionTruth, ...]
    peak_logits: dict[str, float]


@dataclass
class ExamRecord:
    seed: int
    views: tuple[ViewRecord, ...]
    true_breast_percent_dense: dict[str, float]
    analysis: ExamAnalysis | None = None

    @property
    def has_lesion(self) -> bool:
        return any(v.truths for v in self.views)


def hits(region: Region, truth: LesionTruth, spacing_mm: float) -> bool:
    """The region's centre lies inside the truth box widened by :data:`HIT_MARGIN_MM`."""
    m = HIT_MARGIN_MM / spacing_mm
    r, c = region.centre_rc
    r0, c0, r1, c1 = truth.box
    return r0 - m <= r <= r1 + m and c0 - m <= c <= c1 + m


def collect(seeds: Iterable[int], phantom_for: Callable[[int], PhantomConfig], predict: Predict,
            calibration: Calibration | None = None, family: str = "a", relative: bool = False) -> list[ExamRecord]:
    """Analyse the phantom exams of *seeds* (rendered at their native spacing, resampled to the working
    spacing by the pipeline's own code); keep compact records (and the exam analysis when calibrated).
    *family*: phantom family "a" (settings from *phantom_for*) or "b"; *relative*: the network's input is
    breast-relative (:func:`models.mammography.analysis.analyse_view`)."""
    records = []
    for seed in seeds:
        exam, window = family_exam(family, seed, phantom_for(seed))
        analyses: dict[tuple[str, str], ViewAnalysis] = {}
        views = []
        for key, native in exam.views.items():
            pv = to_working(native)
            a = analyse_view(pv.image, pv.laterality, pv.view, window, predict, relative)
            analyses[key] = a
            views.append(ViewRecord(pv.laterality, pv.view, pv.spacing_mm, a.percent_dense, native.percent_dense,
                                    a.candidates, pv.lesions, a.peak_logits))
        record = ExamRecord(seed, tuple(views), dict(exam.breast_percent_dense))
        if calibration is not None:
            record.analysis = analyse_exam(analyses, calibration)
        records.append(record)
    return records


def _marks(records: Sequence[ExamRecord], kind: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(logits of false-positive marks, best hit logit per lesion view (-inf = missed), images)."""
    fp: list[float] = []
    best: list[float] = []
    n_images = 0
    for record in records:
        for v in record.views:
            n_images += 1
            mine = [c for c in v.candidates if c.kind == kind]
            for c in mine:
                if not any(hits(c, t, v.spacing_mm) for t in v.truths):
                    fp.append(c.logit)
            for t in v.truths:
                if t.kind == kind:
                    best.append(max((c.logit for c in mine if hits(c, t, v.spacing_mm)), default=-np.inf))
    return np.asarray(fp), np.asarray(best), n_images


def threshold_for_fp(records: Sequence[ExamRecord], kind: str, fp_per_image: float) -> float:
    """Lowest logit threshold whose false-positive marks per image stay <= *fp_per_image*."""
    fp, _, n_images = _marks(records, kind)
    allowed = int(np.floor(fp_per_image * n_images))
    ordered = np.sort(fp)[::-1]
    if len(ordered) <= allowed:
        return MIN_LOGIT
    return float(np.nextafter(ordered[allowed], np.inf))


def operating_point(records: Sequence[ExamRecord], kind: str, threshold: float) -> tuple[float, float, int]:
    """(sensitivity, false positives per image, number of lesion views) at *threshold*."""
    fp, best, n_images = _marks(records, kind)
    sens = float(np.mean(best >= threshold)) if best.size else float("nan")
    return sens, float((fp >= threshold).sum()) / max(1, n_images), int(best.size)


def _platt(records: Sequence[ExamRecord], kind: str) -> Platt:
    logits, labels = [], []
    for r in records:
        for v in r.views:
            for c in v.candidates:
                if c.kind == kind:
                    logits.append(c.logit)
                    labels.append(any(t.kind == kind and hits(c, t, v.spacing_mm) for t in v.truths))
    return fit_platt(logits, labels)


def calibrate(records: Sequence[ExamRecord], target_fp: dict[str, float]) -> Calibration:
    """Operating logits per kind (false positives per image at most *target_fp*), Platt scaling of the
    region probability per kind, and the exam-score deciles."""
    operating = {kind: threshold_for_fp(records, kind, target_fp[kind]) for kind in KINDS}
    platt = {kind: _platt(records, kind) for kind in KINDS}
    provisional = Calibration(operating, platt, tuple(range(9)))
    cuts = decile_cut_points([max(provisional.exam_raw(v.peak_logits) for v in r.views) for r in records])
    return Calibration(operating, platt, cuts, fitted_on={
        "exams": len(records), "seeds": [records[0].seed, records[-1].seed], "target_fp_per_image": target_fp})


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of *scores* for *labels* (ties count one half); NaN when a class is missing."""
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def fit_platt(logits: Sequence[float], hits: Sequence[bool], l2: float = PLATT_L2) -> Platt:
    """Platt scaling: logistic regression of *hits* on *logits* (scikit-learn, log-loss + l2/2 × a²), as the
    calibrated logit a × logit + b; the identity when one of the classes is missing."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(hits, dtype=bool)
    if x.size == 0 or y.all() or not y.any():
        return Platt()
    model = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", tol=1e-10, max_iter=100).fit(x, y)
    return Platt(float(model.coef_[0, 0]), float(model.intercept_[0]))


def _link_accuracy(records: Sequence[ExamRecord]) -> tuple[float, int]:
    """Among lesions marked on both CC and MLO, the share whose two marks form one linked finding."""
    both = correct = 0
    for record in records:
        if record.analysis is None:
            continue
        spacing = record.views[0].spacing_mm
        truth = {(v.laterality, v.view): v.truths for v in record.views}
        for side in ("L", "R"):
            ids = ({t.lesion_id for t in truth.get((side, "CC"), ())}
                   & {t.lesion_id for t in truth.get((side, "MLO"), ())})
            for lesion_id in ids:
                hit_by = {view: [f.finding_id for f in record.analysis.findings if f.laterality == side
                                 and view in f.regions and any(hits(f.regions[view], t, spacing)
                                                              for t in truth[(side, view)] if t.lesion_id == lesion_id)]
                          for view in ("CC", "MLO")}
                if hit_by["CC"] and hit_by["MLO"]:
                    both += 1
                    correct += bool(set(hit_by["CC"]) & set(hit_by["MLO"]))
    return (correct / both if both else float("nan")), both


@dataclass
class Metrics:
    exams: int
    images: int
    density_agreement_exam: float
    density_agreement_breast: float
    percent_dense_mae: float
    mass: dict[str, float]
    calcification: dict[str, float]
    exam_score_counts: list[int]
    exam_auc: float
    link_accuracy: float
    linked_lesions: int
    passed: dict[str, bool] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"exams {self.exams}, images {self.images}",
            f"density category agreement: exam {self.density_agreement_exam:.1%}, breast "
            f"{self.density_agreement_breast:.1%} (bar >= {BARS['density_agreement']:.0%}); "
            f"percent dense area MAE {self.percent_dense_mae:.2f} points",
            f"mass: sensitivity {self.mass['sensitivity']:.1%} at {self.mass['fp_per_image']:.2f} FP/image "
            f"(operating logit {self.mass['threshold']:.2f}; {int(self.mass['lesions'])} lesion views; "
            f"bar >= 90 % at <= 0.5 FP/image); best at <= 0.5 FP/image: {self.mass['froc_0.5']:.1%}",
            f"calcification cluster: sensitivity {self.calcification['sensitivity']:.1%} at "
            f"{self.calcification['fp_per_image']:.2f} FP/image (operating logit "
            f"{self.calcification['threshold']:.2f}; {int(self.calcification['lesions'])} lesion views; bar >= 85 %)",
            f"exam score 1-10 counts: {self.exam_score_counts}; exam AUC (lesion vs none) {self.exam_auc:.3f}",
            f"CC/MLO linking: {self.link_accuracy:.1%} of {self.linked_lesions} lesions marked on both views",
            "bars: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in self.passed.items()),
        ]


def evaluate(records: Sequence[ExamRecord], calibration: Calibration) -> Metrics:
    """Quality figures of *records* (collected with *calibration*) against the bars."""
    exam_ok = breast_ok = 0
    n_breasts = 0
    errors = []
    for r in records:
        pred = exam_density({(v.laterality, v.view): v.percent_dense for v in r.views})
        truth_cat = {side: birads_density(pd) for side, pd in r.true_breast_percent_dense.items()}
        exam_ok += pred.category == max(truth_cat.values())
        for b in pred.breasts:
            n_breasts += 1
            breast_ok += b.category == truth_cat[b.laterality]
            errors.append(abs(b.percent_dense - r.true_breast_percent_dense[b.laterality]))
    kinds = {}
    for kind in KINDS:
        thr = calibration.operating_logit[kind]
        sens, fp, n = operating_point(records, kind, thr)
        best = operating_point(records, kind, threshold_for_fp(records, kind, 0.5))[0]
        kinds[kind] = {"threshold": thr, "sensitivity": sens, "fp_per_image": fp, "lesions": float(n),
                       "froc_0.5": best}
    raw = np.array([max(calibration.exam_raw(v.peak_logits) for v in r.views) for r in records])
    scores = [calibration.exam_score(x) for x in raw]
    link, n_link = _link_accuracy(records)
    metrics = Metrics(
        exams=len(records), images=sum(len(r.views) for r in records),
        density_agreement_exam=exam_ok / len(records), density_agreement_breast=breast_ok / n_breasts,
        percent_dense_mae=float(np.mean(errors)), mass=kinds["mass"], calcification=kinds["calcification_cluster"],
        exam_score_counts=[scores.count(s) for s in range(1, 11)],
        exam_auc=auc(raw, np.array([r.has_lesion for r in records])), link_accuracy=link, linked_lesions=n_link)
    metrics.passed = {
        "density": metrics.density_agreement_exam >= BARS["density_agreement"],
        "mass": metrics.mass["sensitivity"] >= BARS["mass_sensitivity"]
        and metrics.mass["fp_per_image"] <= BARS["mass_fp_per_image"],
        "calcification": metrics.calcification["sensitivity"] >= BARS["calcification_sensitivity"],
    }
    return metrics


def torch_predictor(model) -> Predict:
    """A ``predict`` callable running a torch network (logits) on the CPU."""
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return predict
