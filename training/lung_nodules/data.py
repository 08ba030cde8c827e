"""Training samples on the network grid, and a patch sampler biased towards nodules."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid, resample
from models.lung_nodules.lungmask import lung_mask
from models.lung_nodules.preprocess import InputSpec, to_network_grid
from training.msd import Case

LOGGER = logging.getLogger(__name__)

BODY_LEVEL = 0.35  # normalised intensity above which a voxel is body (about -500 HU)


@dataclass(frozen=True, eq=False)
class Sample:
    """One case on the network grid, cropped to the body: image in [0, 1] (float16), label 0/1."""

    name: str
    image: np.ndarray
    label: np.ndarray
    grid: Grid
    foreground: np.ndarray  # (n, 3) indices of label voxels
    meta: dict[str, Any] = field(default_factory=dict)
    confounders: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int32))  # vessels, lung surface
    by_nodule: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # foreground rows by nodule
    nodule_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))  # nodule k: [k], [k+1]

    @property
    def n_nodules(self) -> int:
        return len(self.nodule_starts) - 1


def prepare(case: Case, spec: InputSpec, margin: int = 4, surface_negatives: float = 0.0) -> Sample:
    """Resample *case* to the network grid, crop to the body's bounding box (+ *margin* voxels).

    Raises:
        DatasetError-free: a case without a label gets an all-zero label.
    """
    image, grid = to_network_grid(case.image, case.grid, spec)
    if case.label is not None:
        label = resample((case.label > 0).astype(np.float32), case.grid, grid) >= 0.5
    else:
        label = np.zeros(image.shape, dtype=bool)
    body = np.argwhere(image[::2, ::2, ::2] > BODY_LEVEL) * 2
    if len(body):
        lo = np.maximum(body.min(0) - margin, 0)
        hi = np.minimum(body.max(0) + margin + 2, image.shape)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        image, label = image[sl], label[sl]
        grid = grid.crop(tuple(int(v) for v in lo), tuple(int(v) for v in hi))  # type: ignore[arg-type]
    foreground = np.argwhere(label).astype(np.int32)
    order, starts = _by_nodule(label, foreground)
    return Sample(case.name, image.astype(np.float16), label.astype(np.uint8), grid, foreground, dict(case.meta),
                  _confounders(image, label, grid, spec, wall_share=surface_negatives), order, starts)


def _by_nodule(label: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of *foreground* (the label's voxels) grouped by connected nodule, and where each nodule's
    run starts (plus the end)."""
    components, n = ndimage.label(label, structure=np.ones((3, 3, 3), dtype=bool))
    ids = components[tuple(foreground.T)] if len(foreground) else np.zeros(0, dtype=np.int32)
    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], np.arange(1, n + 2)).astype(np.int64)
    return order, starts


def _confounders(image: np.ndarray, label: np.ndarray, grid: Grid, spec: InputSpec, keep: int = 20000,
                 wall_share: float = 0.0) -> np.ndarray:
    """Up to *keep* hard-negative voxels that are not nodule: dense tissue inside the lungs (vessels,
    airway walls) and, for *wall_share* of them, the lung's own surface (pleura, apices, diaphragm
    domes, mediastinum), where a nodule detector otherwise finds juxtapleural false positives."""
    lo, hi = spec.hu_window
    hu = image * (hi - lo) + lo
    lung = lung_mask(hu, grid)
    free = label == 0
    dense = np.argwhere(lung & (hu > -500.0) & free)
    wall = np.argwhere(lung & ~ndimage.binary_erosion(lung, iterations=2) & free) if wall_share > 0 \
        else np.zeros((0, 3), dtype=np.int64)
    n_wall = min(len(wall), int(keep * wall_share))
    rng = np.random.default_rng(len(dense))
    picked = [_subset(dense, keep - n_wall, rng), _subset(wall, n_wall, rng)]
    return np.concatenate(picked).astype(np.int32)


def _subset(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """*n* of *points* drawn without replacement (all of them, in order, when there are no more)."""
    if len(points) <= n:
        return points
    return points[rng.choice(len(points), n, replace=False)]


class PatchSampler:
    """Random patches: a *positive_fraction* centred on a nodule voxel (jittered) — with *per_nodule*
    every nodule is as likely as any other whatever its size (by voxel, a 25 mm nodule is drawn 100
    times as often as a 5 mm one); of the others a *confounder_fraction* centred on hard negatives
    (vessels, airway walls, the lung surface), the rest anywhere in the body."""

    def __init__(self, samples: Sequence[Sample], patch: tuple[int, int, int], positive_fraction: float,
                 rng: np.random.Generator, confounder_fraction: float = 0.0, per_nodule: bool = False) -> None:
        if not samples:
            raise ValueError("patch sampler: no training samples")
        self.samples = list(samples)
        self.patch = np.array(patch)
        self.positive_fraction = positive_fraction
        self.confounder_fraction = confounder_fraction
        self.per_nodule = per_nodule
        self.rng = rng
        self.positives = [i for i, s in enumerate(self.samples) if len(s.foreground)]

    def _corner(self, sample: Sample, positive: bool) -> np.ndarray:
        shape = np.array(sample.image.shape)
        if positive:
            if self.per_nodule and sample.n_nodules:
                k = int(self.rng.integers(sample.n_nodules))
                voxel = int(sample.by_nodule[self.rng.integers(sample.nodule_starts[k], sample.nodule_starts[k + 1])])
            else:
                voxel = int(self.rng.integers(len(sample.foreground)))
            centre = sample.foreground[voxel] + self.rng.integers(-16, 17, 3)
        elif len(sample.confounders) and self.rng.random() < self.confounder_fraction:
            centre = sample.confounders[self.rng.integers(len(sample.confounders))] + self.rng.integers(-8, 9, 3)
        else:
            centre = self.rng.integers(0, np.maximum(shape, 1))
        return np.clip(centre - self.patch // 2, 0, np.maximum(shape - self.patch, 0))

    def _crop(self, array: np.ndarray, corner: np.ndarray, fill: float) -> np.ndarray:
        sl = tuple(slice(int(c), int(c + p)) for c, p in zip(corner, self.patch, strict=True))
        out = array[sl]
        if out.shape != tuple(self.patch):
            pad = [(0, int(p - s)) for p, s in zip(self.patch, out.shape, strict=True)]
            out = np.pad(out, pad, constant_values=fill)
        return out

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(images ``(size, 1, *patch)`` float32, labels ``(size, 1, *patch)`` int64), augmented by flips."""
        images, labels = [], []
        for _ in range(size):
            positive = bool(self.positives) and self.rng.random() < self.positive_fraction
            index = self.positives[self.rng.integers(len(self.positives))] if positive \
                else int(self.rng.integers(len(self.samples)))
            sample = self.samples[index]
            corner = self._corner(sample, positive)
            img = self._crop(sample.image, corner, 0.0).astype(np.float32)
            lab = self._crop(sample.label, corner, 0).astype(np.int64)
            for axis in (1, 2):
                if self.rng.random() < 0.5:
                    img, lab = np.flip(img, axis), np.flip(lab, axis)
            img = img * self.rng.uniform(0.95, 1.05) + self.rng.uniform(-0.02, 0.02)
            images.append(np.ascontiguousarray(img)[None])
            labels.append(np.ascontiguousarray(lab)[None])
        return np.stack(images), np.stack(labels)
