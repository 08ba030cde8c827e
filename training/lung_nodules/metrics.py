"""Detection and measurement metrics on phantoms with known nodules.

- Matching: a detection hits a ground-truth nodule when its centroid is within
  max(half the nodule's mean diameter, 3 mm) of the nodule's centre; each nodule is hit at most
  once (further hits of the same nodule are ignored, not counted as false positives, as in LUNA16).
- False positive: a detection that hits no nodule of any size.
- FROC: sensitivity for nodules >= 5 mm against the mean number of false positives per scan,
  over score thresholds (MONAI's ``compute_froc_curve_data``); points at 1/8 … 8 FP/scan.
- At an operating threshold: sensitivity (>= 5 mm), FP/scan, Dice (union of outlines vs
  ground-truth mask), mean absolute diameter error and bias (matched nodules, all sizes), type
  accuracy, Lung-RADS agreement per matched nodule and per exam (exam category from all
  detections above the threshold vs from all ground-truth nodules).
- Lung-RADS of a detection: baseline, from what the pipeline measured (the juxtapleural rule only when
  its benign features were measured present); of a truth nodule: the category the phantom recorded,
  from its known shape (:func:`training.lung_nodules.nodules.truth`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from monai.metrics import compute_froc_curve_data

from models.lung_nodules.candidates import Nodule
from models.lung_nodules.lungrads import LungRads, NoduleForRads, NoduleType, exam_category, nodule_category

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MIN_SIZE_MM = 5.0
MATCH_MIN_MM = 3.0


def lung_rads_of(n: dict[str, Any]) -> LungRads:
    """Baseline category of a detection record (see :func:`detection_record`)."""
    ntype = NoduleType(n["type"])
    solid = n["solid_diameter_mm"] if ntype is NoduleType.PART_SOLID else 0.0
    return nodule_category(NoduleForRads(ntype, n["mean_diameter_mm"], min(solid, n["mean_diameter_mm"]),
                                         juxtapleural=n["juxtapleural"], benign_features=n["benign_features"]))


def detection_record(n: Nodule) -> dict[str, Any]:
    """JSON-able summary of a detected nodule; a juxtapleural solid one also carries the benign features its
    outline measured (``smooth``: True, False or None for uncertain; ``pleural_shape``)."""
    rec: dict[str, Any] = {"score": round(n.score, 4), "centre_mm": [round(v, 2) for v in n.centre_mm],
           "long_axis_mm": n.long_axis_mm, "short_axis_mm": n.short_axis_mm, "mean_diameter_mm": n.mean_diameter_mm,
           "volume_mm3": n.volume_mm3, "type": str(n.nodule_type), "solid_diameter_mm": n.solid_diameter_mm,
           "side": n.location.side, "zone": n.location.zone, "juxtapleural": n.location.juxtapleural,
           "benign_features": n.location.benign_features}
    features = n.location.features
    if features is not None:
        rec["smooth"] = features.smooth
        rec["pleural_shape"] = features.shape.value
    rec["lung_rads"] = lung_rads_of(rec).value
    return rec


@dataclass
class ScanResult:
    """Ground truth and detections (all scores) of one scan; *dice* at the operating threshold when known."""

    name: str
    truth: list[dict[str, Any]]
    found: list[dict[str, Any]]
    dice: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _tolerance(t: dict[str, Any]) -> float:
    return max(float(t["mean_diameter_mm"]) / 2.0, MATCH_MIN_MM)


def match(scan: ScanResult, threshold: float) -> tuple[dict[int, int], int]:
    """({truth index: detection index}, false positives) for detections with score >= *threshold*."""
    hits: dict[int, int] = {}
    fps = 0
    kept = sorted((i for i, f in enumerate(scan.found) if f["score"] >= threshold), key=lambda i: -scan.found[i]["score"])
    centres = np.array([t["centre_mm"] for t in scan.truth]).reshape(-1, 3)
    for i in kept:
        if not len(centres):
            fps += 1
            continue
        dist = np.linalg.norm(centres - np.array(scan.found[i]["centre_mm"]), axis=1)
        within = [j for j in np.argsort(dist) if dist[j] <= _tolerance(scan.truth[j])]
        free = [j for j in within if j not in hits]
        if free:
            hits[int(free[0])] = i
        elif not within:
            fps += 1
    return hits, fps


def _operating(scans: Sequence[ScanResult], threshold: float) -> tuple[float, float]:
    """(sensitivity for nodules >= 5 mm, false positives per scan) at *threshold*."""
    total = sum(1 for s in scans for t in s.truth if t["mean_diameter_mm"] >= MIN_SIZE_MM)
    hit, fps = 0, 0
    for s in scans:
        hits, fp = match(s, threshold)
        fps += fp
        hit += sum(1 for j in hits if s.truth[j]["mean_diameter_mm"] >= MIN_SIZE_MM)
    return (hit / total if total else float("nan")), fps / max(len(scans), 1)


def _fp_tp_scores(scans: Sequence[ScanResult]) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores of the false positives, score of the hit of each nodule >= 5 mm with -1 for a miss, the number of
    such nodules). Matching goes by descending score, so the matching at any threshold is a prefix of the matching
    of every detection: one matching gives each detection's part at every threshold."""
    fp, tp = [], []
    for s in scans:
        hits, _ = match(s, -np.inf)
        hit_found = set(hits.values())
        centres = np.array([t["centre_mm"] for t in s.truth]).reshape(-1, 3)
        for i, f in enumerate(s.found):
            near = np.linalg.norm(centres - np.array(f["centre_mm"]), axis=1) if len(centres) else np.zeros(0)
            if i not in hit_found and not any(d <= _tolerance(t) for d, t in zip(near, s.truth, strict=True)):
                fp.append(f["score"])
        tp += [s.found[hits[j]]["score"] if j in hits else _MISSED
               for j, t in enumerate(s.truth) if t["mean_diameter_mm"] >= MIN_SIZE_MM]
    return np.array(fp, dtype=np.float64), np.array(tp, dtype=np.float64), len(tp)


_MISSED = -1.0  # below every score: MONAI's curve starts above its lowest value


def froc(scans: Sequence[ScanResult]) -> dict[str, Any]:
    """FROC points: for each FP rate, the best sensitivity with at most that many FP/scan, and its threshold (the
    highest score giving it). The curve is MONAI's ``compute_froc_curve_data`` (FP/scan and sensitivity at every
    score of a false positive or a hit)."""
    fp, tp, n_targets = _fp_tp_scores(scans)
    n_scans = max(len(scans), 1)
    fp_rate, sens = compute_froc_curve_data(np.r_[fp, _MISSED], tp, max(n_targets, 1), n_scans)
    thresholds = np.array(sorted({*fp.tolist(), *tp.tolist()} - {_MISSED}))
    no_hit = 0.0 if n_targets else float("nan")
    top = max((f["score"] for s in scans for f in s.found), default=None)
    points = {}
    for rate in FP_RATES:
        if top is None:  # nothing found
            best, t = no_hit, 1.0
        elif np.sum(fp >= top) / n_scans > rate:  # even the highest score alone has too many false positives
            best, t = 0.0, 1.0
        else:
            ok = (fp_rate[:-1] <= rate) & (sens[:-1] > 0)  # the last point is MONAI's (0 FP, 0 hits) end
            best = float(np.max(sens[:-1][ok])) if ok.any() else no_hit
            t = float(np.max(thresholds[ok & (sens[:-1] == best)])) if ok.any() else top
        points[str(rate)] = {"sensitivity": round(best, 4), "threshold": round(t, 4)}
    curve = [[round(float(t), 4), round(float(v), 4), round(float(f), 3)]
             for t, v, f in zip(thresholds, sens, fp_rate, strict=False)][::-1]
    return {"points": points, "curve": curve}


def choose_threshold(scans: Sequence[ScanResult], max_fp_per_scan: float, floor: float = 0.5) -> float:
    """Lowest score threshold (>= *floor*) with at most *max_fp_per_scan* FP/scan on *scans*."""
    thresholds = sorted({f["score"] for s in scans for f in s.found if f["score"] >= floor})
    for t in thresholds:
        if _operating(scans, t)[1] <= max_fp_per_scan:
            return float(t)
    return float(thresholds[-1]) if thresholds else floor


def summarize(scans: Sequence[ScanResult], threshold: float) -> dict[str, Any]:
    """Metrics at *threshold* (see the module docstring)."""
    sens, fp = _operating(scans, threshold)
    errors, types, rads = [], [], []
    exam_agree = []
    for s in scans:
        hits, _ = match(s, threshold)
        for j, i in hits.items():
            t, f = s.truth[j], s.found[i]
            errors.append(f["mean_diameter_mm"] - t["mean_diameter_mm"])
            types.append(f["type"] == t["type"])
            rads.append(f["lung_rads"] == t["lung_rads"])
        kept = [f for f in s.found if f["score"] >= threshold]
        got = max((LungRads(f["lung_rads"]) for f in kept), default=LungRads.CAT_1, key=lambda c: c.rank)
        want = max((LungRads(t["lung_rads"]) for t in s.truth), default=LungRads.CAT_1, key=lambda c: c.rank)
        exam_agree.append(got is want)
    dices = [s.dice for s in scans if s.dice is not None]
    err = np.array(errors) if errors else np.zeros(0)
    return {
        "threshold": round(threshold, 4), "scans": len(scans),
        "nodules": sum(len(s.truth) for s in scans),
        "nodules_5mm": sum(1 for s in scans for t in s.truth if t["mean_diameter_mm"] >= MIN_SIZE_MM),
        "sensitivity_5mm": round(sens, 4), "fp_per_scan": round(fp, 3), "matched": len(errors),
        "dice": round(float(np.mean(dices)), 4) if dices else None,
        "diameter_mae_mm": round(float(np.abs(err).mean()), 3) if len(err) else None,
        "diameter_bias_mm": round(float(err.mean()), 3) if len(err) else None,
        "type_accuracy": round(float(np.mean(types)), 4) if types else None,
        "lung_rads_nodule_agreement": round(float(np.mean(rads)), 4) if rads else None,
        "lung_rads_exam_agreement": round(float(np.mean(exam_agree)), 4) if exam_agree else None,
    }


def exam_category_of(records: Sequence[dict[str, Any]]) -> LungRads:
    """Exam category from detection records (their ``type``/size fields)."""
    items = [NoduleForRads(NoduleType(r["type"]), r["mean_diameter_mm"],
                           r["solid_diameter_mm"] if r["type"] == "part-solid" else 0.0,
                           juxtapleural=r["juxtapleural"], benign_features=r["benign_features"]) for r in records]
    return exam_category(items)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    return 1.0 if total == 0 else 2.0 * inter / total
