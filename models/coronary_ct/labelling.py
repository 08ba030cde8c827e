"""Lesion -> vessel labelling around the network, and scoring of a volume: shared by the
pipeline (network through :mod:`models.runtime`) and evaluation (network in torch or ONNX).

Convention: the network labels each 2D lesion; lesions that touch across adjacent slices
(one 3D plaque) then share one label, from their pooled area-weighted log-probabilities.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.coronary_ct.calcium import VESSEL_ORDER, CalciumScore, Lesion, ScanGeometry, Vessel, find_lesions, score
from models.coronary_ct.patches import lesion_patches
from models.errors import ModelError

LOGGER = logging.getLogger(__name__)

#: patches (n, 3, 7, 24, 24) float32 -> logits (n, 5) float32
Predict = Callable[[np.ndarray], np.ndarray]


def lesion_logits(hu: np.ndarray, geometry: ScanGeometry, lesions: Sequence[Lesion], predict: Predict,
                  batch_size: int = 256) -> np.ndarray:
    """The network's logits (n, 5) for each lesion.

    Raises:
        ModelError: the network returned a wrong shape.
    """
    out = []
    for start in range(0, len(lesions), batch_size):
        chunk = lesions[start:start + batch_size]
        logits = predict(lesion_patches(hu, geometry, chunk))
        if logits.shape != (len(chunk), len(VESSEL_ORDER)):
            raise ModelError(f"lesion labeller returned shape {logits.shape}, expected ({len(chunk)}, 5)")
        out.append(np.asarray(logits, dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(VESSEL_ORDER)))


def plaque_ids(lesions: Sequence[Lesion], shape: tuple[int, int, int]) -> np.ndarray:
    """For each 2D lesion, the id of the 3D plaque it belongs to: lesions whose pixels touch across
    adjacent slices (26-connectivity in 3D) form one plaque."""
    mask = np.zeros(shape, dtype=bool)
    for les in lesions:
        mask[les.slice_index, les.pixels[:, 0], les.pixels[:, 1]] = True
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    return np.array([labels[les.slice_index, les.pixels[0, 0], les.pixels[0, 1]] for les in lesions], dtype=np.int64)


def vote_by_plaque(lesions: Sequence[Lesion], logits: np.ndarray, shape: tuple[int, int, int]) -> list[Vessel]:
    """One label per 3D plaque: the argmax of the area-weighted mean log-probabilities of its 2D lesions.

    A plaque spans 1-3 slices; its 2D lesions must be in the same vessel, and pooling their evidence
    corrects the occasional slice whose patch alone is ambiguous.
    """
    if not lesions:
        return []
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ids = plaque_ids(lesions, shape)
    areas = np.array([les.area_mm2 for les in lesions])
    pooled = np.zeros((ids.max() + 1, logits.shape[1]))
    np.add.at(pooled, ids, log_p * areas[:, None])
    return [VESSEL_ORDER[i] for i in np.argmax(pooled[ids], axis=1)]


def label_lesions(hu: np.ndarray, geometry: ScanGeometry, lesions: Sequence[Lesion], predict: Predict,
                  batch_size: int = 256) -> list[Vessel]:
    """The vessel (or not coronary) of each lesion: network logits pooled per 3D plaque (:func:`vote_by_plaque`).

    Raises:
        ModelError: the network returned a wrong shape.
    """
    logits = lesion_logits(hu, geometry, lesions, predict, batch_size)
    return vote_by_plaque(lesions, logits, hu.shape)


@dataclass(frozen=True)
class ScoredVolume:
    lesions: list[Lesion]
    labels: list[Vessel]
    score: CalciumScore


def score_volume(hu: np.ndarray, geometry: ScanGeometry, predict: Predict,
                 calibration_mg_per_cm3_hu: float | None = None) -> ScoredVolume:
    """Candidates -> network labels -> per-vessel and total scores of one (slices, rows, columns) HU volume."""
    lesions = find_lesions(hu, geometry)
    labels = label_lesions(hu, geometry, lesions, predict)
    result = score(lesions, labels, geometry, calibration_mg_per_cm3_hu)
    LOGGER.debug("calcium: %d candidates, %d coronary", len(lesions), result.total.lesion_count)
    return ScoredVolume(lesions, labels, result)
