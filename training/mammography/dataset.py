"""Training data for the mammography network: a pool of phantom views and a patch sampler.

Targets per pixel (three binary channels, :data:`models.mammography.network.CHANNELS`):
fibroglandular tissue, mass core, calcification-cluster region. Inputs are normalised with the
phantom display window exactly as the pipeline normalises a DICOM image with its VOI window.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.mammography.preprocess import normalise
from training.mammography.phantom import PHANTOM_WINDOW, PhantomConfig, PhantomView, make_exam, to_working

_MARGIN = 16


@dataclass(frozen=True)
class PoolImage:
    """One view cropped around the breast: input (float16, normalised) and target bits
    (uint8: 1 dense, 2 mass, 4 calcification cluster)."""

    x: np.ndarray
    bits: np.ndarray
    lesion_centres: tuple[tuple[int, int, int], ...]  # (row, col, bit) in the crop
    breast_pixels: np.ndarray  # (N, 2) sample of breast pixel coordinates in the crop


def pool_image(view: PhantomView, rng: np.random.Generator) -> PoolImage:
    rows = np.nonzero(view.breast.any(axis=1))[0]
    cols = np.nonzero(view.breast.any(axis=0))[0]
    r0, r1 = max(0, rows.min() - _MARGIN), min(view.breast.shape[0], rows.max() + _MARGIN)
    c1 = min(view.breast.shape[1], cols.max() + _MARGIN)
    crop = (slice(r0, r1), slice(0, c1))
    bits = (view.dense.astype(np.uint8) | (view.mass.astype(np.uint8) << 1) | (view.calc.astype(np.uint8) << 2))[crop]
    x = normalise(view.image, *PHANTOM_WINDOW)[crop].astype(np.float16)
    centres = tuple((int(round(les.centre_rc[0])) - r0, int(round(les.centre_rc[1])), 2 if les.kind == "mass" else 4)
                    for les in view.lesions)
    inside = np.argwhere(view.breast[crop])
    sample = inside[rng.choice(len(inside), size=min(4000, len(inside)), replace=False)]
    return PoolImage(x, bits.astype(np.uint8), centres, sample.astype(np.int32))


def build_pool(seeds: Sequence[int], phantom_for: Callable[[int], PhantomConfig]) -> list[PoolImage]:
    """Every view of the phantom exams of *seeds* (settings per seed from *phantom_for*), at the working spacing."""
    pool = []
    for seed in seeds:
        exam = make_exam(seed, phantom_for(seed))
        rng = np.random.default_rng(seed + 1)
        pool += [pool_image(to_working(view), rng) for view in exam.views.values()]
    return pool


class PatchSampler:
    """Random patches: a share centred (with jitter) on masses, on calcification clusters, the rest anywhere
    in the breast; random up-down flips and a ±5 % gain."""

    def __init__(self, pool: Sequence[PoolImage], patch: int, seed: int, lesion_share: float = 0.6) -> None:
        self.pool = list(pool)
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.lesion_share = lesion_share
        self.by_bit = {bit: [(i, r, c) for i, p in enumerate(self.pool) for r, c, b in p.lesion_centres if b == bit]
                       for bit in (2, 4)}
        self.background = float(normalise(np.array([0.02]), *PHANTOM_WINDOW)[0])

    def _centre(self) -> tuple[int, int, int]:
        u = self.rng.random()
        for bit, share in ((2, self.lesion_share / 2), (4, self.lesion_share)):
            if u < share and self.by_bit[bit]:
                i, r, c = self.by_bit[bit][self.rng.integers(len(self.by_bit[bit]))]
                j = self.patch // 3
                return i, r + int(self.rng.integers(-j, j + 1)), c + int(self.rng.integers(-j, j + 1))
        i = int(self.rng.integers(len(self.pool)))
        r, c = self.pool[i].breast_pixels[self.rng.integers(len(self.pool[i].breast_pixels))]
        return i, int(r), int(c)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): float32 (batch, 1, P, P) inputs and float32 (batch, 3, P, P) targets."""
        p = self.patch
        xs = np.full((batch, 1, p, p), self.background, dtype=np.float32)
        ys = np.zeros((batch, 3, p, p), dtype=np.float32)
        for k in range(batch):
            i, r, c = self._centre()
            img = self.pool[i]
            r0, c0 = r - p // 2, c - p // 2
            sr = slice(max(0, r0), min(img.x.shape[0], r0 + p))
            sc = slice(max(0, c0), min(img.x.shape[1], c0 + p))
            dr, dc = sr.start - r0, sc.start - c0
            h, w = sr.stop - sr.start, sc.stop - sc.start
            centre, width = PHANTOM_WINDOW
            low = centre - width / 2.0
            units = img.x[sr, sc].astype(np.float32) * width + low
            xs[k, 0, dr:dr + h, dc:dc + w] = (units * self.rng.uniform(0.95, 1.05) - low) / width
            bits = img.bits[sr, sc]
            for ch, bit in enumerate((1, 2, 4)):
                ys[k, ch, dr:dr + h, dc:dc + w] = (bits & bit) > 0
            if self.rng.random() < 0.5:
                xs[k], ys[k] = xs[k, :, ::-1].copy(), ys[k, :, ::-1].copy()
        return xs, ys
