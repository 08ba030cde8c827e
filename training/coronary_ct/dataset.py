"""Training samples for the lesion labeller: patches of phantom lesions with their vessel class."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.coronary_ct.calcium import Lesion, find_lesions
from models.coronary_ct.patches import lesion_patches
from training.coronary_ct.phantom import CalciumPhantom, Truth, lesion_truth, make_phantom
from training.coronary_ct.phantom_b import make_phantom_b

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


def family_phantom(family: str, seed: int) -> CalciumPhantom:
    """A phantom of *family*: "A" (:mod:`training.coronary_ct.phantom`) or "B" (:mod:`training.coronary_ct.phantom_b`).

    Raises:
        ValueError: an unknown family.
    """
    if family == "A":
        return make_phantom(seed)
    if family == "B":
        return make_phantom_b(seed)
    raise ValueError(f"unknown coronary phantom family {family!r} (A or B)")


def _phantom_samples(args: tuple[str, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    family, s, bone_per_phantom, seed = args
    rng = np.random.default_rng([seed, s, ord(family)])
    phantom = family_phantom(family, s)
    lesions, truth = phantom_lesions(phantom)
    bone = [i for i, t in enumerate(truth) if t is Truth.BONE]
    keep = [i for i, t in enumerate(truth) if t is not Truth.BONE]
    keep += list(rng.choice(bone, size=min(bone_per_phantom, len(bone)), replace=False)) if bone else []
    chosen = [lesions[i] for i in keep]
    return (lesion_patches(phantom.hu, phantom.geometry, chosen).astype(np.float16),
            np.array([truth[i].vessel.index for i in keep], dtype=np.int64),
            np.array([int(truth[i]) for i in keep], dtype=np.uint8))


def build_samples(seeds: Iterable[int], bone_per_phantom: int = 40, seed: int = 0,
                  families: Sequence[str] = ("A",), workers: int = 1) -> Samples:
    """All non-bone lesions of each phantom of each family plus up to *bone_per_phantom* random bone lesions;
    phantoms built in *workers* processes."""
    jobs = [(f, s, bone_per_phantom, seed) for f in families for s in seeds]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_phantom_samples, jobs, chunksize=4)
    else:
        parts = [_phantom_samples(j) for j in jobs]
    samples = Samples(*(np.concatenate([p[k] for p in parts]) for k in range(3)))
    LOGGER.info("coronary samples: %d patches, classes %s", len(samples.y), np.bincount(samples.y, minlength=5))
    return samples
