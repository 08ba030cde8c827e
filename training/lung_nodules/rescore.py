"""Fit the second stage (false-positive reduction) of a lung-nodule run: ``aiws rescore RUN --data DIR``.

The run's exported candidate network finds candidates on a tuning dataset (phantoms whose seeds
are neither training nor evaluation seeds), each with the features of
:mod:`models.lung_nodules.rescore`. A candidate is positive when it hits a ground-truth nodule
(same matching as the metrics). A logistic regression (L2-penalised, scikit-learn's ``LogisticRegression`` on
standardised features) learns nodule against the rest. The operating threshold is chosen on
cross-validated scores (each fold's scans scored by a model fitted without them), so it is not
tuned on the very candidates it was fitted on; the final model is then fitted on all of them.

The result goes into the candidate's ``model_card.json`` (``rescore`` section, ``postprocess.min_score``,
``operating_point``) and the tuning seeds into ``run.json`` (``rescore_seeds``), so ``aiws evaluate``
refuses evaluation data that shares them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from models.lung_nodules.inference import candidate_settings, detect_nodules
from models.lung_nodules.rescore import FEATURES, Rescorer
from models.runtime.ort import OnnxRuntime
from models.runtime.repository import ModelRepository
from training.lung_nodules.dataset import dataset_seeds
from training.lung_nodules.export import CANDIDATE_DIR, attach_classifier, run_model
from training.lung_nodules.metrics import MATCH_MIN_MM, ScanResult, choose_threshold, detection_record, froc
from training.msd import case_names, read_case
from training.publish import CARD_JSON, render_card

LOGGER = logging.getLogger(__name__)

L2 = 1.0
FOLDS = 4
SUMMARY = (" Candidates are scored by a second stage: a logistic regression on the network's peak probability and "
           "the candidate's shape and neighbourhood (vessel continuity, tissue around it), fitted on tuning phantoms.")
BLOBS = (" Small nodules the network misses are looked for by a Hessian dot-enhancement filter (Li, Sone and "
         "Doi 2003): its {n} strongest blobs in the lung that no network candidate covers are candidates too, scored "
         "by the same second stage.")
GROW = (" A solid nodule's outline may reach past the network's probability into its CT body, less the vessels "
        "thinner than a ball of {n} mm radius, where that body ends inside the lung (not at the chest wall, the "
        "mediastinum or a thicker vessel).")
LIMITATION = ("The second stage learned what phantom vessels and airway walls look like next to phantom nodules; "
              "refit it (aiws rescore) on local data before trusting its false-positive reduction on patient CT.")


def _with_sentence(summary: str, template: str, value: float) -> str:
    """*summary* with *template* filled with *value* (an earlier such sentence replaced; none for 0)."""
    summary = re.sub(re.escape(template).replace(r"\{n\}", r"[\d.]+"), "", summary)
    return summary + template.format(n=value) if value else summary


def with_blob_sentence(summary: str, blobs: int) -> str:
    """*summary* saying how many dot-filter blobs are candidates (an earlier such sentence replaced; none for 0)."""
    return _with_sentence(summary, BLOBS, blobs)


def with_grow_sentence(summary: str, radius_mm: float) -> str:
    """*summary* saying how solid outlines grow (``grow_open_mm``; an earlier such sentence replaced; none for 0)."""
    return _with_sentence(summary, GROW, radius_mm)


class RescoreError(ValueError):
    """The second stage cannot be fitted as asked (no candidate, seeds shared with training)."""


CLASSIFIER_SENTENCE = (" A 3D CNN candidate classifier ({model} version {version}) looks at the CT around each "
                       "candidate; its logit is one of the second stage's features.")


def with_classifier_sentence(summary: str, entry: dict[str, Any] | None) -> str:
    """*summary* naming the candidate classifier (an earlier such sentence replaced; none without one)."""
    pattern = re.escape(CLASSIFIER_SENTENCE).replace(r"\{model\}", r"\S+").replace(r"\{version\}", r"\d+")
    summary = re.sub(pattern, "", summary)
    return summary + CLASSIFIER_SENTENCE.format(**entry) if entry else summary


def features_of(card: dict[str, Any]) -> tuple[str, ...]:
    """The second-stage features of a card: all of FEATURES, less ``classifier_logit`` without a classifier."""
    return FEATURES if "classifier" in card else tuple(f for f in FEATURES if f != "classifier_logit")


@dataclass
class TuningScan:
    """Candidates of one tuning scan: their detection records (network score) and features."""

    scan: ScanResult
    features: np.ndarray  # (candidates, len(names))
    positive: np.ndarray  # bool per candidate: hits a ground-truth nodule
    names: tuple[str, ...] = FEATURES  # the features' names, in column order


def _positives(scan: ScanResult) -> np.ndarray:
    """Candidates that hit a ground-truth nodule (any size; a second hit of one nodule is no false positive)."""
    centres = np.array([t["centre_mm"] for t in scan.truth]).reshape(-1, 3)
    tolerance = np.array([max(t["mean_diameter_mm"] / 2.0, MATCH_MIN_MM) for t in scan.truth])
    return np.array([bool(len(centres)) and bool(
        (np.linalg.norm(centres - np.array(f["centre_mm"]), axis=1) <= tolerance).any()) for f in scan.found],
        dtype=bool)


def collect(runtime: OnnxRuntime, model: str, version: int, data_dir: Path, names: tuple[str, ...] = FEATURES
            ) -> list[TuningScan]:
    """Every candidate (network score >= prob_threshold) of every case of *data_dir*, with its features *names*."""
    settings = dataclasses.replace(candidate_settings(runtime, model, version), min_score=0.0)
    out = []
    for name in case_names(data_dir):
        case = read_case(data_dir, name)
        det = detect_nodules(runtime, case.image, case.grid, model, version, settings, rescore=False,
                             features=True)
        scan = ScanResult(name, case.meta.get("nodules", []), [detection_record(n) for n in det.nodules])
        feats = np.array([[n.features[f] for f in names] for n in det.nodules], dtype=np.float64)
        out.append(TuningScan(scan, feats.reshape(-1, len(names)), _positives(scan), names))
        LOGGER.info("tuning %s: %d candidates, %d on nodules", name, len(det.nodules), int(out[-1].positive.sum()))
    return out


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, names: tuple[str, ...] = FEATURES) -> Rescorer:
    """L2-penalised logistic regression of *y* (bool) on *x* (rows: candidates, columns: the features *names*),
    standardised: minimises the log-loss + l2/2 × |weights|² (the intercept is not penalised), scikit-learn's
    ``LogisticRegression(C=1/l2)`` with the Newton–Cholesky solver.

    Raises:
        RescoreError: no positive or no negative candidate.
    """
    if not y.any() or y.all():
        raise RescoreError(f"need candidates on nodules and elsewhere ({int(y.sum())} of {len(y)} on nodules)")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", tol=1e-10, max_iter=100)
    model.fit((x - mean) / scale, y)
    return Rescorer(names, tuple(float(v) for v in mean), tuple(float(v) for v in scale),
                    tuple(float(v) for v in model.coef_[0]), float(model.intercept_[0]))


def _rescored(scans: Sequence[TuningScan], scores: Sequence[np.ndarray]) -> list[ScanResult]:
    return [ScanResult(t.scan.name, t.scan.truth, [{**f, "score": round(float(s), 6)} for f, s in
                                                   zip(t.scan.found, sc, strict=True)])
            for t, sc in zip(scans, scores, strict=True)]


def cross_validated(scans: Sequence[TuningScan], folds: int = FOLDS) -> list[ScanResult]:
    """The tuning scans with each candidate scored by a model fitted on the other folds' scans."""
    scores: list[np.ndarray] = [np.zeros(0)] * len(scans)
    for k in range(folds):
        held = [i for i in range(len(scans)) if i % folds == k]
        rest = [i for i in range(len(scans)) if i % folds != k]
        if not held or not rest:
            continue
        names = scans[0].names
        model = fit(np.vstack([scans[i].features for i in rest]), np.concatenate([scans[i].positive for i in rest]),
                    names=names)
        for i in held:
            scores[i] = np.array([model.score(dict(zip(names, row, strict=True))) for row in scans[i].features])
    return _rescored(scans, scores)


@dataclass(frozen=True)
class RescoreOptions:
    """What ``aiws rescore`` changes in the run's candidate before fitting (None: keep the card's setting).

    ``blob_candidates``: ``postprocess.blob_candidates`` (dot-filter blobs added as candidates,
    ``models/lung_nodules/blobs.py``). ``grow_open_mm``: ``postprocess.grow_open_mm`` (solid outlines grown past
    the network's probability, ``models/lung_nodules/candidates.py``). ``classifier``: the candidate classifier,
    a published version in ``repository`` (``0``: latest), a classifier run folder, or ``none``
    (:func:`training.lung_nodules.export.attach_classifier`). ``max_fp_per_scan``: the operating point, the
    lowest score threshold with at most that many false positives per tuning scan (cross-validated scores;
    the card's ``operating_point.chosen_for_max_fp_per_scan``).
    """

    blob_candidates: int | None = None
    grow_open_mm: float | None = None
    classifier: str | None = None
    repository: Path | None = None
    max_fp_per_scan: float | None = None

    def problem(self) -> tuple[str, float, str] | None:
        """The first option out of range as (field, value, rule), None when all are valid."""
        rules = (("blob_candidates", self.blob_candidates, lambda v: v >= 0, "must be >= 0"),
                 ("grow_open_mm", self.grow_open_mm, lambda v: v >= 0, "must be >= 0"),
                 ("max_fp_per_scan", self.max_fp_per_scan, lambda v: v > 0, "must be > 0"))
        return next(((name, value, rule) for name, value, ok, rule in rules if value is not None and not ok(value)),
                    None)

    def check(self) -> None:
        """Raises: RescoreError on a negative count or radius, or a false-positive rate <= 0."""
        found = self.problem()
        if found is not None:
            raise RescoreError(f"{found[0]} {found[1]}: {found[2]}")


def rescore_run(run_dir: Path, data_dir: Path, options: RescoreOptions = RescoreOptions(), threads: int = 0
                ) -> dict[str, Any]:
    """Fit the second stage of *run_dir*'s candidate on *data_dir*, after the changes *options* asks for; update
    its model card; returns the summary.

    Raises:
        RescoreError: no exported candidate, shared seeds, bad options, or no candidate on a nodule.
        FileNotFoundError, ModelNotFound: the classifier asked for does not exist.
    """
    repo = ModelRepository(run_dir / CANDIDATE_DIR)
    if not repo.models():
        raise RescoreError(f"{run_dir}: no exported model in {repo.root} (train first)")
    run_path = run_dir / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8"))
    seeds = dataset_seeds(data_dir)
    shared = sorted(set(seeds) & set(run.get("training_seeds", [])))
    if shared:
        raise RescoreError(f"{data_dir}: phantom seeds {shared[:10]} were used to train {run_dir.name}")
    options.check()
    with _restored_on_error(repo.root):
        if options.classifier is not None:
            attach_classifier(run_dir, options.classifier, options.repository)
        return _fit_run(run_dir, data_dir, options, threads, seeds)


@contextlib.contextmanager
def _restored_on_error(root: Path) -> Iterator[None]:
    """The candidate repository *root* as it was when the block raises (a classifier attached for a fit that
    failed is taken away again)."""
    backup = Path(tempfile.mkdtemp(prefix=".rescore-", dir=root.parent))
    try:
        shutil.copytree(root, backup / "export")
        try:
            yield
        except BaseException:
            shutil.rmtree(root)
            shutil.copytree(backup / "export", root)
            raise
    finally:
        shutil.rmtree(backup)


def _fit_run(run_dir: Path, data_dir: Path, options: RescoreOptions, threads: int, seeds: list[int]
             ) -> dict[str, Any]:
    repo = ModelRepository(run_dir / CANDIDATE_DIR)
    run_path = run_dir / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8"))
    model = run_model(run_dir)
    runtime = OnnxRuntime(repo, device="cpu", intra_op_threads=threads)
    version = runtime.resolve_version(model)
    markdown_path = repo.card_path(model, version)
    card_path = markdown_path.with_name(CARD_JSON)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for key, value in (("blob_candidates", options.blob_candidates), ("grow_open_mm", options.grow_open_mm)):
        if value is not None:
            card.setdefault("postprocess", {})[key] = value
    card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    names = features_of(card)
    scans = collect(runtime, model, version, data_dir, names)
    x = np.vstack([s.features for s in scans])
    y = np.concatenate([s.positive for s in scans])
    rescorer = fit(x, y, names=names)
    max_fp = options.max_fp_per_scan or float(card.get("operating_point", {}).get("chosen_for_max_fp_per_scan", 0.5))
    validated = cross_validated(scans)
    threshold = choose_threshold(validated, max_fp, floor=0.0)
    network_froc = froc([s.scan for s in scans])["points"]
    rescored_froc = froc(validated)["points"]
    blobs = int(card.get("postprocess", {}).get("blob_candidates", 0))
    grow = float(card.get("postprocess", {}).get("grow_open_mm", 0.0))
    summary = {"data": data_dir.name, "seeds": seeds, "scans": len(scans), "candidates": len(y),
               "on_nodules": int(y.sum()), "blob_candidates": blobs, "grow_open_mm": grow,
               "classifier": card.get("classifier"), "l2": L2, "folds": FOLDS,
               "threshold": round(threshold, 4), "max_fp_per_scan": max_fp,
               "froc_network_score": network_froc, "froc_cross_validated": rescored_froc}
    card["rescore"] = {**rescorer.to_mapping(), "trained_on": summary}
    card.setdefault("postprocess", {})["min_score"] = round(threshold, 4)
    if SUMMARY not in card.get("summary", ""):
        card["summary"] = card.get("summary", "") + SUMMARY
    card["summary"] = with_classifier_sentence(with_grow_sentence(with_blob_sentence(card["summary"], blobs), grow),
                                               card.get("classifier"))
    if LIMITATION not in card.get("limitations", []):
        card["limitations"] = [*card.get("limitations", []), LIMITATION]
    card["operating_point"] = {"score_threshold": round(threshold, 4), "chosen_for_max_fp_per_scan": max_fp,
                               "chosen_on": f"cross-validated second-stage scores of {len(scans)} tuning phantoms"}
    card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    markdown_path.write_text(render_card(card), encoding="utf-8")
    run["rescore_seeds"] = seeds
    run_path.write_text(json.dumps(run, indent=2), encoding="utf-8")
    LOGGER.info("run %s: second stage fitted on %d candidates (%d on nodules), threshold %.4f", run_dir.name,
                len(y), int(y.sum()), threshold)
    return summary


def report_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines for ``aiws rescore``."""
    def points(p: dict[str, Any]) -> str:
        return ", ".join(f"{k}: {v['sensitivity']:.3f}" for k, v in p.items())
    blobs, grow = summary.get("blob_candidates", 0), summary.get("grow_open_mm", 0.0)
    classifier = summary.get("classifier")
    return [f"second stage fitted on {summary['candidates']} candidates ({summary['on_nodules']} on nodules) of "
            f"{summary['scans']} tuning phantoms" + (f", up to {blobs} dot-filter blobs per scan among them" if blobs
                                                     else "")
            + (f", solid outlines grown to their CT body (vessels thinner than {grow} mm radius left out)" if grow
               else "") + (f", with the classifier's logit ({classifier['model']} version {classifier['version']}"
                           f"{', from run ' + str(classifier['run']) if 'run' in classifier else ''})" if classifier
                           else "") + f"; operating threshold {summary['threshold']} (at most "
            f"{summary.get('max_fp_per_scan', 0.5)} false positives per tuning scan)",
            "FROC, network score (sensitivity >= 5 mm at FP/scan): " + points(summary["froc_network_score"]),
            "FROC, second stage (cross-validated):                " + points(summary["froc_cross_validated"])]
