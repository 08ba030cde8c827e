"""Pre- and post-processing around the cine segmentation network (numpy only).

Each 2D image is scaled by its own 99th intensity percentile (bSSFP blood ≈ 1, robust to
coil bias and scanner gain), padded to a multiple of 16 (the U-Net's total stride) with zeros,
segmented, cropped back, and the label is the argmax of the logits. Then, per image
(:func:`clean_labels`): each pool keeps its largest connected part, the myocardium its parts that
touch the LV pool; anything enclosed by
the LV blood pool becomes blood pool (papillary muscles and trabeculae count as cavity); and the
basal-slice rule: LV blood pool counts only where at least half of the 2-pixel ring around it is LV
myocardium -- otherwise the slice is atrial and its LV labels become background. Over the stack
(:func:`basal_myocardium_rule`): LV myocardium on slices beyond the basal end of the LV blood pool
is background too (atrial wall); beyond the apical end it is kept (the apical cap).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from models.errors import ModelError

LOGGER = logging.getLogger(__name__)

MULTIPLE = 16
N_CLASSES = 4

#: images (b, 1, H, W) float32 -> logits (b, 4, H, W) float32
Predict = Callable[[np.ndarray], np.ndarray]


def normalise(images: np.ndarray) -> np.ndarray:
    """(n, H, W) images -> float32 divided per image by its 99th percentile (>= 1e-6)."""
    x = images.astype(np.float32)
    scale = np.percentile(x.reshape(x.shape[0], -1), 99, axis=1)
    return x / np.maximum(scale, 1e-6)[:, None, None]


def pad_to_multiple(images: np.ndarray, multiple: int = MULTIPLE) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad (n, H, W) at the bottom/right to multiples of *multiple*; return the array and (H, W)."""
    n, h, w = images.shape
    ph, pw = -h % multiple, -w % multiple
    return np.pad(images, ((0, 0), (0, ph), (0, pw))), (h, w)


def segment_images(images: np.ndarray, predict: Predict, batch_size: int = 16) -> np.ndarray:
    """Labels (n, H, W) uint8 (0 background, 1 LV pool, 2 LV myocardium, 3 RV pool) of (n, H, W) images.

    Raises:
        ModelError: not a 3D array, or the network returned a wrong shape.
    """
    if images.ndim != 3:
        raise ModelError(f"cine segmentation: expected (images, rows, columns), got shape {images.shape}")
    padded, (h, w) = pad_to_multiple(normalise(images))
    out = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, len(padded), batch_size):
        x = padded[start:start + batch_size, None]
        logits = predict(np.ascontiguousarray(x))
        if logits.shape != (x.shape[0], N_CLASSES, *x.shape[2:]):
            raise ModelError(f"cine segmenter returned shape {logits.shape} for input {x.shape}")
        labels = np.argmax(logits[:, :, :h, :w], axis=1).astype(np.uint8)
        out[start:start + batch_size] = [clean_labels(lab) for lab in labels]
    return out


def _largest(mask: np.ndarray) -> np.ndarray:
    parts, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(parts.ravel())[1:]
    return parts == (1 + int(np.argmax(sizes)))


def _myocardium(myo: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The myocardium parts touching the LV pool (a thin wall may break into arcs), else the largest part."""
    if not pool.any():
        return _largest(myo)
    parts, _ = ndimage.label(myo)
    touching = np.unique(parts[ndimage.binary_dilation(pool, iterations=2) & myo])
    return np.isin(parts, touching[touching > 0])


#: Basal-slice rule: minimum fraction of the ring around the LV blood pool that is LV myocardium.
MIN_MYOCARDIAL_RING = 0.5


def myocardial_ring_fraction(labels: np.ndarray) -> float | None:
    """Fraction of the 2-pixel ring around the LV blood pool labelled LV myocardium; None without a pool."""
    pool = labels == 1
    if not pool.any():
        return None
    ring = ndimage.binary_dilation(pool, iterations=2) & ~pool
    return float((labels[ring] == 2).mean()) if ring.any() else 0.0


def clean_labels(labels: np.ndarray) -> np.ndarray:
    """One 2D label image: largest connected part of the LV and RV pools and the myocardium parts touching
    the LV pool (others -> background); pixels enclosed by the LV blood pool -> LV blood pool; an LV pool less than half surrounded by LV
    myocardium (an atrial slice) -> LV pool and myocardium become background."""
    out = np.zeros_like(labels)
    pool = _largest(labels == 1)
    out[_largest(labels == 3)] = 3
    out[_myocardium(labels == 2, pool)] = 2
    out[pool] = 1
    if pool.any():
        out[ndimage.binary_fill_holes(pool)] = 1
    ring = myocardial_ring_fraction(out)
    if ring is not None and ring < MIN_MYOCARDIAL_RING:
        out[(out == 1) | (out == 2)] = 0
    return out


def basal_myocardium_rule(labels: np.ndarray) -> np.ndarray:
    """(phases, slices, rows, columns) labels: LV myocardium on slices on the basal side of each phase's
    LV blood pool becomes background. The basal end is the end of the pool's slice range with the larger
    pool area summed over phases (the apex tapers). Returns a new array."""
    out = labels.copy()
    area = (labels == 1).sum(axis=(2, 3))  # (phases, slices)
    total = area.sum(axis=0)
    with_pool = np.nonzero(total)[0]
    if with_pool.size < 2:
        return out
    base_is_low = total[with_pool[0]] >= total[with_pool[-1]]
    for phase in range(labels.shape[0]):
        present = np.nonzero(area[phase])[0]
        if not present.size:
            continue
        basal = slice(0, present[0]) if base_is_low else slice(present[-1] + 1, labels.shape[1])
        block = out[phase, basal]
        block[block == 2] = 0
    return out
