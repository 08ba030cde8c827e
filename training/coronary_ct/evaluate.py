"""Evaluation of the calcium pipeline's measures against phantom truth, on seeds never used in training.

Quality bars (issue 5): total Agatston within 5 % of the truth (within 3 points when the
truth is below 60) on every phantom; vessel assignment accuracy >= 90 % over truly coronary
lesions; no bone lesion counted.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from models.coronary_ct.calcium import VESSEL_ORDER, Lesion, ScanGeometry, Vessel, score
from models.coronary_ct.labelling import Predict, label_lesions, vote_by_plaque
from models.coronary_ct.patches import lesion_patches
from training.coronary_ct.dataset import phantom_lesions
from training.coronary_ct.phantom import Truth, make_phantom

LOGGER = logging.getLogger(__name__)

#: Seeds 0-4999 train, 5000-9999 validate during training, >= 10000 are the unseen evaluation seeds.
EVAL_SEED_START = 10_000


def agatston_within_bar(predicted: float, truth: float) -> bool:
    """|predicted - truth| <= 3 points when truth < 60, else <= 5 % of truth."""
    tolerance = 3.0 if truth < 60 else 0.05 * truth
    return abs(predicted - truth) <= tolerance + 1e-9


@dataclass(frozen=True)
class PhantomResult:
    seed: int
    truth_agatston: float
    agatston: float
    truth_cac_drs: str
    cac_drs: str
    coronary_lesions: int
    correct_vessel: int
    bone_counted: int
    extra_counted: int  # aortic/valve/mitral calcium or noise counted as coronary

    @property
    def within_bar(self) -> bool:
        return agatston_within_bar(self.agatston, self.truth_agatston)


@dataclass(frozen=True)
class CoronaryMetrics:
    results: tuple[PhantomResult, ...]

    @property
    def agatston_within_bar_fraction(self) -> float:
        return float(np.mean([r.within_bar for r in self.results])) if self.results else 0.0

    @property
    def vessel_accuracy(self) -> float:
        total = sum(r.coronary_lesions for r in self.results)
        return sum(r.correct_vessel for r in self.results) / total if total else 1.0

    @property
    def bone_counted(self) -> int:
        return sum(r.bone_counted for r in self.results)

    @property
    def cac_drs_agreement(self) -> float:
        return float(np.mean([r.cac_drs == r.truth_cac_drs for r in self.results])) if self.results else 0.0

    @property
    def passes(self) -> bool:
        return self.agatston_within_bar_fraction == 1.0 and self.vessel_accuracy >= 0.9 and self.bone_counted == 0

    def as_dict(self) -> dict[str, float | int | bool]:
        errors = [abs(r.agatston - r.truth_agatston) for r in self.results]
        return {
            "phantoms": len(self.results),
            "agatston_within_bar_fraction": round(self.agatston_within_bar_fraction, 4),
            "agatston_mean_abs_error": round(float(np.mean(errors)), 3) if errors else 0.0,
            "vessel_accuracy": round(self.vessel_accuracy, 4),
            "coronary_lesions": sum(r.coronary_lesions for r in self.results),
            "bone_lesions_counted": self.bone_counted,
            "extra_coronary_lesions_counted": sum(r.extra_counted for r in self.results),
            "cac_drs_agreement": round(self.cac_drs_agreement, 4),
            "passes_bars": self.passes,
        }

    def table(self) -> str:
        lines = ["seed   truth  score  bar  CAC-DRS(truth/ours)  vessel-ok  bone  extra"]
        for r in self.results:
            lines.append(f"{r.seed:<6} {r.truth_agatston:6.1f} {r.agatston:6.1f}  {'ok ' if r.within_bar else 'NO '}"
                         f"  {r.truth_cac_drs:>7}/{r.cac_drs:<7}       {r.correct_vessel:>3}/{r.coronary_lesions:<3}"
                         f"   {r.bone_counted:>3}  {r.extra_counted:>3}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PreparedPhantom:
    """A phantom's lesions, truth and network input, computed once (validation reuses it every epoch)."""

    seed: int
    geometry: ScanGeometry
    shape: tuple[int, int, int]
    lesions: list[Lesion]
    truth: list[Truth]
    patches: np.ndarray  # float16


def prepare(seed: int) -> PreparedPhantom:
    phantom = make_phantom(seed)
    lesions, truth = phantom_lesions(phantom)
    patches = lesion_patches(phantom.hu, phantom.geometry, lesions).astype(np.float16)
    return PreparedPhantom(seed, phantom.geometry, phantom.hu.shape, lesions, truth, patches)


def compare(prepared: PreparedPhantom, labels: list[Vessel]) -> PhantomResult:
    """Score with the given labels and with the truth labels, and count the labelling errors."""
    lesions, truth = prepared.lesions, prepared.truth
    ours = score(lesions, labels, prepared.geometry)
    ref = score(lesions, [t.vessel for t in truth], prepared.geometry)
    coronary = [(t, lab) for t, lab in zip(truth, labels) if t.vessel is not Vessel.NONE]
    counted = [t for t, lab in zip(truth, labels) if lab is not Vessel.NONE]
    return PhantomResult(
        seed=prepared.seed,
        truth_agatston=ref.total.agatston,
        agatston=ours.total.agatston,
        truth_cac_drs=ref.cac_drs,
        cac_drs=ours.cac_drs,
        coronary_lesions=len(coronary),
        correct_vessel=sum(1 for t, lab in coronary if t.vessel is lab),
        bone_counted=sum(1 for t in counted if t is Truth.BONE),
        extra_counted=sum(1 for t in counted if t in (Truth.EXTRA_CORONARY, Truth.NONE)),
    )


def evaluate_prepared(prepared: Iterable[PreparedPhantom], predict: Predict, batch_size: int = 512) -> CoronaryMetrics:
    """Metrics of a labeller over prepared phantoms."""
    results = []
    for p in prepared:
        logits = [predict(p.patches[i:i + batch_size].astype(np.float32)) for i in range(0, len(p.lesions), batch_size)]
        stacked = np.concatenate(logits).astype(np.float64) if logits else np.zeros((0, len(VESSEL_ORDER)))
        results.append(compare(p, vote_by_plaque(p.lesions, stacked, p.shape)))
    return CoronaryMetrics(tuple(results))


def evaluate_phantom(seed: int, predict: Predict) -> PhantomResult:
    """Generate, label through :func:`label_lesions` (the pipeline's code path) and compare."""
    phantom = make_phantom(seed)
    lesions, truth = phantom_lesions(phantom)
    labels = label_lesions(phantom.hu, phantom.geometry, lesions, predict)
    prepared = PreparedPhantom(seed, phantom.geometry, phantom.hu.shape, lesions, truth, np.zeros((0,), np.float16))
    return compare(prepared, labels)


def evaluate(seeds: Iterable[int], predict: Predict) -> CoronaryMetrics:
    """Run the labeller on each phantom and compare scores and labels with the truth."""
    results = tuple(evaluate_phantom(s, predict) for s in seeds)
    metrics = CoronaryMetrics(results)
    LOGGER.info("coronary evaluation: %s", metrics.as_dict())
    return metrics
