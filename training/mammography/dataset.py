"""Training data for the mammography network: a pool of phantom views and a patch sampler.

Targets per pixel (three binary channels, :data:`models.mammography.network.CHANNELS`):
fibroglandular tissue, mass core, calcification-cluster region. Inputs are normalised with the
phantom's display window exactly as the pipeline normalises a DICOM image with its VOI window (and, for a
breast-relative configuration, mapped to the breast's own air and fat levels as the pipeline then does).
Pools hold phantoms of family A (:mod:`~training.mammography.phantom`) or B (:mod:`~training.mammography.phantom_b`);
:class:`FamilySampler` draws the same share of each batch from each family's pool.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from models.mammography.analysis import breast_relative
from models.mammography.preprocess import WORKING_SPACING_MM, normalise
from models.mammography.segmentation import segment_breast
from training.mammography.phantom import (
    PHANTOM_WINDOW,
    PhantomConfig,
    PhantomExam,
    PhantomView,
    make_exam,
    to_working,
)
from training.mammography.phantom_b import make_exam_b

_MARGIN = 16


@dataclass(frozen=True)
class PoolImage:
    """One view cropped around the breast: input (float16, normalised) and target bits
    (uint8: 1 dense, 2 mass, 4 calcification cluster)."""

    x: np.ndarray
    bits: np.ndarray
    lesion_centres: tuple[tuple[int, int, int], ...]  # (row, col, bit) in the crop
    breast_pixels: np.ndarray  # (N, 2) sample of breast pixel coordinates in the crop


def network_input(view: PhantomView, window: tuple[float, float], relative: bool) -> np.ndarray:
    """The input the service gives the network for *view* (working spacing): the display-window normalised image,
    or (*relative*) that image mapped to the breast's own air and fat levels, found on the service's own
    segmentation (:func:`models.mammography.analysis.breast_relative`)."""
    if not relative:
        return normalise(view.image, *window)
    return breast_relative(view.image, window, segment_breast(view.image, WORKING_SPACING_MM, view.view))


def pool_image(view: PhantomView, rng: np.random.Generator, window: tuple[float, float] = PHANTOM_WINDOW,
               relative: bool = False) -> PoolImage:
    rows = np.nonzero(view.breast.any(axis=1))[0]
    cols = np.nonzero(view.breast.any(axis=0))[0]
    r0, r1 = max(0, rows.min() - _MARGIN), min(view.breast.shape[0], rows.max() + _MARGIN)
    c1 = min(view.breast.shape[1], cols.max() + _MARGIN)
    crop = (slice(r0, r1), slice(0, c1))
    bits = (view.dense.astype(np.uint8) | (view.mass.astype(np.uint8) << 1) | (view.calc.astype(np.uint8) << 2))[crop]
    x = network_input(view, window, relative)[crop].astype(np.float16)
    centres = tuple((int(round(les.centre_rc[0])) - r0, int(round(les.centre_rc[1])), 2 if les.kind == "mass" else 4)
                    for les in view.lesions)
    inside = np.argwhere(view.breast[crop])
    sample = inside[rng.choice(len(inside), size=min(4000, len(inside)), replace=False)]
    return PoolImage(x, bits.astype(np.uint8), centres, sample.astype(np.int32))


@dataclass(frozen=True)
class PoolSpec:
    """Which phantoms a pool holds: *family* "a" (:func:`make_exam`) or "b" (:func:`make_exam_b`), the network's
    input (*relative*: breast-relative), and the breasts that may carry lesions per seed (*sides*; None: both)."""

    family: str = "a"
    relative: bool = False
    sides: Callable[[int], tuple[str, ...]] | None = None

    def key(self, seed: int) -> str:
        """What besides the phantom settings names a pooled seed (empty for family A's window input, both sides)."""
        sides = self.sides(seed) if self.sides else ("R", "L")
        parts = [self.family if self.family != "a" else "", "relative" if self.relative else "",
                 "".join(sides) if sides != ("R", "L") else ""]
        return ",".join(p for p in parts if p)


def family_exam(family: str, seed: int, phantom: PhantomConfig,
                sides: tuple[str, ...] = ("R", "L")) -> tuple[PhantomExam, tuple[float, float]]:
    """The exam of *seed* in *family* (A: settings *phantom*; B draws its own lesions) with lesions only in
    *sides*, and its display window."""
    if family == "b":
        exam_b = make_exam_b(seed, lesion_sides=sides)
        return exam_b, exam_b.window
    return make_exam(seed, replace(phantom, lesion_sides=sides)), PHANTOM_WINDOW


def build_pool(seeds: Sequence[int], phantom_for: Callable[[int], PhantomConfig],
               spec: PoolSpec = PoolSpec()) -> list[PoolImage]:
    """Every view of the phantom exams of *seeds* (settings per seed from *phantom_for*), at the working spacing."""
    pool = []
    for seed in seeds:
        sides = spec.sides(seed) if spec.sides else ("R", "L")
        exam, window = family_exam(spec.family, seed, phantom_for(seed), sides)
        rng = np.random.default_rng(seed + 1)
        pool += [pool_image(to_working(view), rng, window, spec.relative) for view in exam.views.values()]
    return pool


class FamilySampler:
    """Patches from one :class:`PatchSampler` per phantom family, each family drawing the same share of every
    batch (the first family takes the odd patch of an odd batch)."""

    def __init__(self, samplers: Sequence[PatchSampler]) -> None:
        self.samplers = list(samplers)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.samplers)
        parts = [s.sample(batch // n + (1 if k < batch % n else 0)) for k, s in enumerate(self.samplers)]
        parts = [p for p in parts if len(p[0])]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


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
