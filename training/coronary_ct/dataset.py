"""Training samples for the lesion labeller: patches of phantom lesions with their vessel class."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from models.coronary_ct.calcium import Lesion, find_lesions
from models.coronary_ct.patches import lesion_patches
from training.coronary_ct.phantom import CalciumPhantom, Truth, lesion_truth, make_phantom

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Samples:
    """Patches (n, 3, 7, 24, 24) float16, network classes (n,) int64 and truth labels (n,) uint8."""

    x: np.ndarray
    y: np.ndarray
    truth: np.ndarray


def phantom_lesions(phantom: CalciumPhantom) -> tuple[list[Lesion], list[Truth]]:
    lesions = find_lesions(phantom.hu, phantom.geometry)
    return lesions, lesion_truth(phantom, lesions)


def build_samples(seeds: Iterable[int], bone_per_phantom: int = 40, seed: int = 0) -> Samples:
    """All non-bone lesions of each phantom plus up to *bone_per_phantom* random bone lesions."""
    rng = np.random.default_rng(seed)
    xs, ys, ts = [], [], []
    for s in seeds:
        phantom = make_phantom(s)
        lesions, truth = phantom_lesions(phantom)
        bone = [i for i, t in enumerate(truth) if t is Truth.BONE]
        keep = [i for i, t in enumerate(truth) if t is not Truth.BONE]
        keep += list(rng.choice(bone, size=min(bone_per_phantom, len(bone)), replace=False)) if bone else []
        chosen = [lesions[i] for i in keep]
        xs.append(lesion_patches(phantom.hu, phantom.geometry, chosen).astype(np.float16))
        ys.append(np.array([truth[i].vessel.index for i in keep], dtype=np.int64))
        ts.append(np.array([int(truth[i]) for i in keep], dtype=np.uint8))
    samples = Samples(np.concatenate(xs), np.concatenate(ys), np.concatenate(ts))
    LOGGER.info("coronary samples: %d patches, classes %s", len(samples.y), np.bincount(samples.y, minlength=5))
    return samples
