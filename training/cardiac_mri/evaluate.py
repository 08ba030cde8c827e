"""Evaluation of cardiac function from the network's masks against phantom truth (unseen seeds).

Quality bars (issue 5): EDV and ESV within 5 %, EF within 3 percentage points, LV mass within 10 %.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from models.cardiac_mri.function import CardiacFunction, bsa_mosteller_m2, cardiac_function
from models.cardiac_mri.segment import Predict, basal_myocardium_rule, segment_images
from training.cardiac_mri.phantom import make_params, masks_from_labels, render_all, truth_function

LOGGER = logging.getLogger(__name__)

#: Seeds 0-4999 train, 5000-9999 validate during training, >= 10000 are the unseen evaluation seeds.
EVAL_SEED_START = 10_000


def segment_cine(images: np.ndarray, predict: Predict) -> np.ndarray:
    """Labels (phases, slices, H, W) of a (phases, slices, H, W) cine."""
    flat = images.reshape(-1, *images.shape[2:])
    return basal_myocardium_rule(segment_images(flat, predict).reshape(images.shape))


@dataclass(frozen=True)
class CineResult:
    seed: int
    truth: CardiacFunction
    ours: CardiacFunction

    def error_pct(self, name: str) -> float:
        t, o = _value(self.truth, name), _value(self.ours, name)
        return (o - t) / t * 100.0

    @property
    def ef_error_points(self) -> float:
        return self.ours.lv.ef_pct - self.truth.lv.ef_pct

    @property
    def within_bars(self) -> bool:
        return (abs(self.error_pct("edv")) <= 5 and abs(self.error_pct("esv")) <= 5
                and abs(self.ef_error_points) <= 3 and abs(self.error_pct("mass")) <= 10)


def _value(f: CardiacFunction, name: str) -> float:
    return {"edv": f.lv.edv_ml, "esv": f.lv.esv_ml, "mass": f.lv_mass_g,
            "rvedv": f.rv.edv_ml if f.rv else 0.0, "rvesv": f.rv.esv_ml if f.rv else 0.0}[name]


@dataclass(frozen=True)
class CardiacMetrics:
    results: tuple[CineResult, ...]

    def _max_abs(self, name: str) -> float:
        return max(abs(r.error_pct(name)) for r in self.results)

    def as_dict(self) -> dict[str, float | int | bool]:
        r = self.results
        return {
            "phantoms": len(r),
            "within_all_bars_fraction": round(float(np.mean([x.within_bars for x in r])), 4),
            "edv_max_abs_error_pct": round(self._max_abs("edv"), 2),
            "esv_max_abs_error_pct": round(self._max_abs("esv"), 2),
            "ef_max_abs_error_points": round(max(abs(x.ef_error_points) for x in r), 2),
            "mass_max_abs_error_pct": round(self._max_abs("mass"), 2),
            "edv_mean_error_pct": round(float(np.mean([x.error_pct("edv") for x in r])), 2),
            "esv_mean_error_pct": round(float(np.mean([x.error_pct("esv") for x in r])), 2),
            "mass_mean_error_pct": round(float(np.mean([x.error_pct("mass") for x in r])), 2),
            "rv_edv_max_abs_error_pct": round(self._max_abs("rvedv"), 2),
            "rv_esv_max_abs_error_pct": round(self._max_abs("rvesv"), 2),
            "ed_es_phase_agreement": round(float(np.mean([
                (x.truth.lv.ed_phase, x.truth.lv.es_phase) == (x.ours.lv.ed_phase, x.ours.lv.es_phase) for x in r])), 4),
            "passes_bars": all(x.within_bars for x in r),
        }

    def table(self) -> str:
        lines = ["seed   EDV truth/ours     ESV truth/ours     EF truth/ours    mass truth/ours   bars"]
        for x in self.results:
            t, o = x.truth, x.ours
            lines.append(f"{x.seed:<6} {t.lv.edv_ml:6.1f}/{o.lv.edv_ml:6.1f}    {t.lv.esv_ml:6.1f}/{o.lv.esv_ml:6.1f}"
                         f"     {t.lv.ef_pct:5.1f}/{o.lv.ef_pct:5.1f}    {t.lv_mass_g:6.1f}/{o.lv_mass_g:6.1f}"
                         f"    {'ok' if x.within_bars else 'NO'}")
        return "\n".join(lines)


def evaluate_phantom(seed: int, predict: Predict) -> CineResult:
    params = make_params(seed)
    images, _ = render_all(params)
    labels = segment_cine(images, predict)
    bsa = bsa_mosteller_m2(params.height_cm, params.weight_kg)
    ours = cardiac_function(masks_from_labels(labels), params.geometry, params.heart_rate_bpm, bsa)
    return CineResult(seed, truth_function(params), ours)


def evaluate_phantom_b(seed: int, predict: Predict) -> CineResult:
    """:func:`evaluate_phantom` on the family-B cine of *seed* (:mod:`training.cardiac_mri.phantom_b`)."""
    from training.cardiac_mri.phantom_b import make_cine_b

    cine = make_cine_b(seed)
    labels = segment_cine(cine.images, predict)
    ours = cardiac_function(masks_from_labels(labels), cine.geometry, cine.heart_rate_bpm, cine.bsa_m2)
    return CineResult(seed, cine.truth(), ours)


def evaluate(seeds: Iterable[int], predict: Predict, family: str = "A") -> CardiacMetrics:
    """Metrics over the phantoms of *seeds* of phantom family ``A`` (:mod:`.phantom`) or ``B`` (:mod:`.phantom_b`).

    Raises:
        ValueError: another family.
    """
    one = {"A": evaluate_phantom, "B": evaluate_phantom_b}.get(family.upper())
    if one is None:
        raise ValueError(f"cardiac evaluation: family {family!r}, expected A or B")
    metrics = CardiacMetrics(tuple(one(s, predict) for s in seeds))
    LOGGER.info("cardiac evaluation (family %s): %s", family.upper(), metrics.as_dict())
    return metrics
