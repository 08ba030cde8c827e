"""Training samples of phantom family B and the MONAI augmentation of the cardiac training loop (issue 28).

:func:`sample_b` renders one slice of a family-B cine (:mod:`training.cardiac_mri.phantom_b`: bias fields,
trabeculation, papillary muscles, gaps, partial coverage, breathing shifts) at a phase (a quarter at
end-diastole, a quarter at end-systole), normalises it as the service does and crops it around the slice's LV
axis (jittered; sometimes anywhere), so atrial slices and slices beyond the apex are drawn too (background
there). :class:`Augment` applies MONAI dictionary transforms to a crop and its labels: rotation and scale (pixel
spacing), elastic deformation, a polynomial bias field, contrast gamma, intensity scale, blur and Rician noise.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.cardiac_mri.segment import normalise
from training.cardiac_mri.phantom_b import CineBParams, draw_b, render_b


def _phase_b(n_phases: int, t_es: float, rng: np.random.Generator) -> int:
    r = rng.random()
    if r < 0.25:
        return 0
    if r < 0.5:
        return int(round(t_es * n_phases)) % n_phases
    return int(rng.integers(n_phases))


def basal_slices(p: CineBParams, phase: int) -> list[int]:
    """The slices of *p* above the LV base at *phase* (atrial: blood in a thin wall, background) and those within
    one slice step below it (the first ventricular ones). The base descends toward the apex
    in systole, so at end-systole the first slices are often atrial; version 2 of the segmenter read such a slice
    as LV with a myocardial ring and over-estimated the end-systolic volume (family B seeds 10002, 10006, 10009:
    +19 to +39 %)."""
    base, step = p.base_mm(phase), p.thickness_mm + p.gap_mm
    return [k for k in range(p.n_slices) if p.slice_mm(k) <= base + step]


def sample_b(seed: int, crop: int, rng: np.random.Generator, basal_fraction: float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """(image (crop, crop) float32 normalised per image, labels (crop, crop) uint8) of a family-B slice; with
    probability *basal_fraction* one of :func:`basal_slices` (where the cine has one)."""
    p = draw_b(seed)
    k = int(rng.integers(p.n_slices))  # drawn first, as before basal sampling: configs without it draw the same
    phase = _phase_b(p.n_phases, p.heart.t_es, rng)
    near_base = basal_slices(p, phase) if basal_fraction > 0 and rng.random() < basal_fraction else []
    k = int(rng.choice(near_base)) if near_base else k
    image, labels = render_b(p, phase, k)
    image = normalise(image[None])[0]
    h, w = image.shape
    if rng.random() < 0.15:
        ci, cj = float(rng.integers(h)), float(rng.integers(w))
    else:
        ci, cj = p.heart_centre_px(k)
        ci, cj = ci + rng.normal(0, 8), cj + rng.normal(0, 8)
    i0 = int(np.clip(ci - crop / 2, 0, h - crop))
    j0 = int(np.clip(cj - crop / 2, 0, w - crop))
    return image[i0:i0 + crop, j0:j0 + crop], labels[i0:i0 + crop, j0:j0 + crop]


class Augment:
    """MONAI augmentation of a (1, H, W) image and its (1, H, W) labels (nearest-neighbour for labels)."""

    def __init__(self, seed: int, crop: int) -> None:
        from monai.transforms import (
            Compose,
            Rand2DElasticd,
            RandAdjustContrastd,
            RandAffined,
            RandBiasFieldd,
            RandGaussianSmoothd,
            RandRicianNoised,
            RandScaleIntensityd,
        )

        keys = ["image", "label"]
        self.transform = Compose([
            RandAffined(keys, prob=0.6, rotate_range=math.radians(25), scale_range=0.15,
                        mode=("bilinear", "nearest"), padding_mode="zeros", spatial_size=(crop, crop), cache_grid=True),
            Rand2DElasticd(keys, spacing=(24, 24), magnitude_range=(0.5, 2.0), prob=0.25, spatial_size=(crop, crop),
                           mode=("bilinear", "nearest"), padding_mode="zeros"),
            RandBiasFieldd(["image"], degree=3, coeff_range=(0.0, 0.3), prob=0.5),
            RandAdjustContrastd(["image"], gamma=(0.7, 1.4), prob=0.5),
            RandScaleIntensityd(["image"], factors=0.15, prob=0.3),
            RandGaussianSmoothd(["image"], sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0), prob=0.2),
            RandRicianNoised(["image"], std=0.04, prob=0.3),
        ])
        self.transform.set_random_state(seed)

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a 96 x 96 crop: threads cost ten times the work (measured: 63 -> 7 ms)
        try:
            out: Any = self.transform({"image": image.astype(np.float32), "label": labels.astype(np.float32)})
        finally:
            torch.set_num_threads(threads)
        x = np.asarray(out["image"], dtype=np.float32)
        y = np.rint(np.asarray(out["label"])).astype(np.int64)
        return x, y
