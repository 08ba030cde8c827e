"""Lesion -> vessel labelling around the network, and scoring of a volume: shared by the
pipeline (network through :mod:`models.runtime`) and evaluation (network in torch or ONNX).

Convention: the network labels each 2D lesion; lesions that touch across adjacent slices
(one 3D plaque) then share one label, from their pooled area-weighted log-probabilities, except that
the pool never discards a lesion the network itself calls coronary. Structures that are skeletal by
anatomy (>= 30 mm in z, or cut by the edge of the heart-centred field of view) are never scored.
What is not scored is kept as :class:`~models.coronary_ct.findings.RejectedCalcium` (bone or
non-coronary calcification, with the reason and the location) for the "not scored" list of the SR.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.coronary_ct.calcium import VESSEL_ORDER, CalciumScore, Lesion, ScanGeometry, Vessel, find_lesions, score
from models.coronary_ct.findings import RejectedCalcium, RejectedKind
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


#: A lesion keeps its own coronary label against its plaque's "not coronary" vote only when the network gives that
#: label at least this probability. On unseen family-B phantoms (seeds 10000-10059, version 2) the coronary lesions
#: kept so (left main beside the aortic root) had 0.96-1.00; the mitral-annulus slivers that were kept and counted,
#: the thin end slice of an annulus calcification the rest of which the network called not coronary at 1.00, had
#: 0.77-0.84.
KEEP_OWN_MIN_PROBABILITY = 0.9


def vote_by_plaque(lesions: Sequence[Lesion], logits: np.ndarray, shape: tuple[int, int, int]) -> list[Vessel]:
    """One label per 3D plaque: the argmax of the area-weighted mean log-probabilities of its 2D lesions.

    A plaque spans 1-3 slices; its 2D lesions must be in the same vessel, and pooling their evidence
    corrects the occasional slice whose patch alone is ambiguous. The pool never turns a lesion that the network
    itself calls coronary with probability >= :data:`KEEP_OWN_MIN_PROBABILITY` into "not coronary" (it keeps its
    own label then): touching calcium of the aortic root, valve or mitral annulus must not take a coronary lesion
    out of the score. A less certain one goes with its plaque: the end slice of an annulus calcification is not
    counted because its own patch leans coronary.
    """
    if not lesions:
        return []
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ids = plaque_ids(lesions, shape)
    areas = np.array([les.area_mm2 for les in lesions])
    pooled = np.zeros((ids.max() + 1, logits.shape[1]))
    np.add.at(pooled, ids, log_p * areas[:, None])
    voted = np.argmax(pooled[ids], axis=1)
    own = np.argmax(log_p, axis=1)
    # A lesion the network itself calls coronary, surely, is never discarded by its neighbours' votes: a left main
    # or circumflex lesion touching aortic-root, valve or annulus calcium would otherwise be outvoted by it.
    sure = np.exp(log_p.max(axis=1)) >= KEEP_OWN_MIN_PROBABILITY
    kept = np.where((voted == Vessel.NONE.index) & (own != Vessel.NONE.index) & sure, own, voted)
    return [VESSEL_ORDER[i] for i in kept]


def label_lesions(hu: np.ndarray, geometry: ScanGeometry, lesions: Sequence[Lesion], predict: Predict,
                  batch_size: int = 256) -> list[Vessel]:
    """The vessel (or not coronary) of each lesion: network logits pooled per 3D plaque (:func:`vote_by_plaque`).

    Raises:
        ModelError: the network returned a wrong shape.
    """
    logits = lesion_logits(hu, geometry, lesions, predict, batch_size)
    voted = vote_by_plaque(lesions, logits, hu.shape)
    skeletal = skeletal_structures(lesions, geometry, hu.shape)
    return [Vessel.NONE if bone else lab for lab, bone in zip(voted, skeletal)]


#: A calcified structure running this far in z (mm) is bone (spine, sternum, rib ends), not coronary calcium.
BONE_Z_EXTENT_MM = 30.0


def skeletal_structures(lesions: Sequence[Lesion], geometry: ScanGeometry, shape: tuple[int, int, int]) -> np.ndarray:
    """For each lesion, whether its 3D structure (:func:`plaque_ids`) is skeletal whatever the labeller says: it
    spans >= :data:`BONE_Z_EXTENT_MM` in z, or touches the edge of the field of view (a calcium-score field of
    view is centred on the heart; what it cuts is chest wall or spine). Seen on independent phantoms: a rib
    sliver at the edge of the image, on 14 slices, counted as RCA."""
    if not lesions:
        return np.zeros(0, dtype=bool)
    ids = plaque_ids(lesions, shape)
    z_lo, z_hi = np.full(ids.max() + 1, shape[0]), np.full(ids.max() + 1, -1)
    edge = np.zeros(ids.max() + 1, dtype=bool)
    for les, i in zip(lesions, ids):
        z_lo[i], z_hi[i] = min(z_lo[i], les.slice_index), max(z_hi[i], les.slice_index)
        edge[i] |= bool((les.pixels.min() == 0) | (les.pixels[:, 0].max() == shape[1] - 1)
                        | (les.pixels[:, 1].max() == shape[2] - 1))
    long_z = (z_hi - z_lo + 1) * geometry.increment_mm >= BONE_Z_EXTENT_MM
    return (long_z | edge)[ids]


#: A not-scored structure whose largest in-plane extent (mm) or volume (mm³) reaches these is called bone;
#: valve, annulus and aortic-wall calcifications are smaller.
BONE_EXTENT_MM = 20.0
BONE_VOLUME_MM3 = 800.0


def rejected_structures(lesions: Sequence[Lesion], labels: Sequence[Vessel], geometry: ScanGeometry,
                        shape: tuple[int, int, int]) -> list[RejectedCalcium]:
    """The candidates labelled not coronary, grouped into 3D structures (:func:`plaque_ids`), each with its
    kind (bone by size, :data:`BONE_EXTENT_MM` / :data:`BONE_VOLUME_MM3`; else non-coronary calcification),
    the reason, and where it is. Sorted by volume, largest first."""
    rejected = [les for les, lab in zip(lesions, labels) if lab is Vessel.NONE]
    if not rejected:
        return []
    ids = plaque_ids(rejected, shape)
    skeletal = skeletal_structures(rejected, geometry, shape)
    out = []
    for pid in np.unique(ids):
        members = [les for les, i in zip(rejected, ids) if i == pid]
        biggest = max(members, key=lambda les: les.area_mm2)
        extent = max(float(np.hypot(*(np.ptp(les.pixels, axis=0) * np.asarray(geometry.pixel_spacing_mm))))
                     for les in members)
        volume = sum(les.area_mm2 for les in members) * geometry.increment_mm
        bone = extent >= BONE_EXTENT_MM or volume >= BONE_VOLUME_MM3 or bool(skeletal[ids == pid].any())
        reason = (f"large or skeletal calcified structure ({extent:.0f} mm in plane, {volume:.0f} mm3): bone or "
                  "cartilage" if bone
                  else "labelled not coronary by the lesion labeller (valve, annulus, aortic wall or cartilage)")
        out.append(RejectedCalcium(RejectedKind.BONE if bone else RejectedKind.NON_CORONARY, reason,
                                   biggest.slice_index, biggest.centroid_rc,
                                   max(float(np.sqrt(biggest.pixels.shape[0] / np.pi)), 1.0), len(members), volume,
                                   max(les.peak_hu for les in members)))
    return sorted(out, key=lambda r: -r.volume_mm3)


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
