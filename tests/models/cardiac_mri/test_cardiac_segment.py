"""Pre/post-processing around the cine network: per-image scaling, padding to 16, crop back, argmax."""
from __future__ import annotations

import numpy as np
import pytest

from models.cardiac_mri.segment import normalise, pad_to_multiple, segment_images
from models.errors import ModelError


def test_normalise_divides_each_image_by_its_99th_percentile() -> None:
    a = np.stack([np.linspace(0, 100, 1000).reshape(10, 100), np.linspace(0, 5, 1000).reshape(10, 100)])
    x = normalise(a)
    assert np.percentile(x[0], 99) == pytest.approx(1.0) and np.percentile(x[1], 99) == pytest.approx(1.0)
    assert normalise(np.zeros((1, 4, 4))).max() == 0.0  # no division by zero


def test_pad_to_multiple_of_16() -> None:
    padded, (h, w) = pad_to_multiple(np.ones((2, 170, 160)))
    assert padded.shape == (2, 176, 160) and (h, w) == (170, 160)
    assert padded[:, 170:].sum() == 0


def _threshold_network(x: np.ndarray) -> np.ndarray:
    """A stand-in with known output: class 3 (RV pool) where the scaled image > 0.5."""
    assert x.shape[2] % 16 == 0 and x.shape[3] % 16 == 0
    logits = np.zeros((x.shape[0], 4, *x.shape[2:]), dtype=np.float32)
    logits[:, 0] = 0.5
    logits[:, 3] = x[:, 0]
    return logits


def test_segment_crops_back_and_takes_argmax() -> None:
    images = np.zeros((3, 50, 37), dtype=np.float32)
    images[:, 10:20, 5:15] = 100.0
    images[:, 30:32, 30:32] = 20.0
    labels = segment_images(images, _threshold_network, batch_size=2)
    assert labels.shape == (3, 50, 37) and labels.dtype == np.uint8
    assert (labels[:, 10:20, 5:15] == 3).all()
    assert labels.sum() == 3 * 100 * 3


def test_segment_rejects_wrong_network_output() -> None:
    with pytest.raises(ModelError):
        segment_images(np.ones((1, 16, 16)), lambda x: np.zeros((1, 3, 16, 16), np.float32))


def test_clean_labels_keeps_largest_parts_and_fills_the_pool() -> None:
    from models.cardiac_mri.segment import clean_labels

    lab = np.zeros((30, 30), dtype=np.uint8)
    lab[5:20, 5:20] = 2  # myocardium
    lab[8:17, 8:17] = 1  # blood pool
    lab[11:13, 11:13] = 2  # a papillary muscle labelled myocardium, inside the pool
    lab[25:27, 25:27] = 1  # a stray pool island
    lab[0:2, 28:30] = 2  # a stray myocardium island
    out = clean_labels(lab)
    assert (out[8:17, 8:17] == 1).all()  # the papillary muscle is cavity
    assert out[25, 25] == 0 and out[0, 29] == 0
    assert (out == 2).sum() == 15 * 15 - 9 * 9


def test_basal_rule_pool_needs_half_a_myocardial_ring() -> None:
    from models.cardiac_mri.segment import clean_labels, myocardial_ring_fraction

    lv = np.zeros((40, 40), dtype=np.uint8)
    lv[5:25, 5:25] = 2
    lv[9:21, 9:21] = 1  # ventricle: the pool is fully ringed by myocardium
    assert myocardial_ring_fraction(lv) == 1.0
    assert (clean_labels(lv) == lv).all()

    atrium = np.zeros((40, 40), dtype=np.uint8)
    atrium[9:21, 9:21] = 1
    atrium[7:9, 7:23] = 2  # a thin wall on one side only: about a quarter of the ring
    fraction = myocardial_ring_fraction(atrium)
    assert fraction is not None and fraction < 0.5
    assert clean_labels(atrium).max() == 0  # atrial slice: no LV labels

    half = np.zeros((40, 40), dtype=np.uint8)
    half[9:21, 9:21] = 1
    half[7:23, 7:9] = 2
    half[7:23, 21:23] = 2
    half[7:9, 9:21] = 2  # three sides ringed: kept
    assert clean_labels(half).max() == 2
    assert myocardial_ring_fraction(np.zeros((5, 5), dtype=np.uint8)) is None


def test_basal_myocardium_rule_removes_atrial_wall_keeps_apical_cap() -> None:
    from models.cardiac_mri.segment import basal_myocardium_rule

    lab = np.zeros((2, 6, 20, 20), dtype=np.uint8)
    for k, r in ((1, 8), (2, 7), (3, 5), (4, 3)):  # base (k=1) wide, tapering to the apex (k=4)
        lab[:, k, 10 - r - 2:10 + r + 2, 10 - r - 2:10 + r + 2] = 2
        lab[:, k, 10 - r:10 + r, 10 - r:10 + r] = 1
    lab[:, 5, 8:12, 8:12] = 2  # apical cap: myocardium only, kept
    lab[:, 0, 2:5, 2:9] = 2  # atrial wall above the base: removed
    lab[1, 1] = 0  # at phase 1 the base has descended: slice 1 is atrial ...
    lab[1, 1, 2:5, 2:9] = 2  # ... with some wall labelled myocardium: removed
    out = basal_myocardium_rule(lab)
    assert (out[:, 0] == 0).all() and (out[1, 1] == 0).all()
    assert (out[:, 5] == lab[:, 5]).all() and (out[0, 1] == lab[0, 1]).all()
    assert (basal_myocardium_rule(np.zeros((1, 3, 4, 4), np.uint8)) == 0).all()
