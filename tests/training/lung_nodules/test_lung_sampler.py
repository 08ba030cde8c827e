"""Training samples: the network grid, the body crop and the hard negatives the sampler draws from."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.lung_nodules.geometry import Grid
from models.lung_nodules.lungmask import lung_mask
from models.lung_nodules.preprocess import InputSpec
from training.lung_nodules.data import PatchSampler, Sample, _by_nodule, prepare
from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from training.msd import Case

SMALL = PhantomConfig(max_matrix=160, z_extent_mm=60.0, nodules=(2, 3), diameter_mm=(6.0, 12.0))
SPEC = InputSpec((2.0, 2.0, 2.0))


@pytest.fixture(scope="module")
def sample() -> Sample:
    phantom = generate_phantom(21, SMALL)
    return prepare(Case("lung_21", phantom.hu, phantom.grid, (phantom.labels > 0).astype(np.uint8)), SPEC,
                   surface_negatives=0.4)


def test_hard_negatives_are_vessels_and_lung_surface_never_nodule(sample: Sample) -> None:
    points = sample.confounders
    assert len(points) > 100
    at = tuple(points.T)
    assert not sample.label[at].any()
    lo, hi = SPEC.hu_window
    hu = sample.image.astype(np.float32) * (hi - lo) + lo
    lung = lung_mask(hu, sample.grid)  # from the float16 sample: a few boundary voxels may differ
    assert lung[at].mean() > 0.98
    surface = (lung & ~ndimage.binary_erosion(lung, iterations=2))[at]
    dense = hu[at] > -500.0
    assert (surface | dense).mean() > 0.98
    # both kinds are drawn: the lung surface (apices, diaphragm, pleura) and the dense tissue inside
    assert 0.2 < surface.mean() and (dense & ~surface).mean() > 0.2


def test_sampler_patches_have_the_patch_shape_and_positives(sample: Sample) -> None:
    sampler = PatchSampler([sample], (24, 24, 24), 1.0, np.random.default_rng(0), confounder_fraction=0.5)
    images, labels = sampler.batch(4)
    assert images.shape == labels.shape == (4, 1, 24, 24, 24)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert labels.sum() > 0


def test_every_nodule_is_drawn_as_often_whatever_its_size() -> None:
    label = np.zeros((240, 40, 40), dtype=np.uint8)
    label[20:23, 18:21, 18:21] = 1  # 27 voxels (a 3 mm nodule at 1 mm)
    label[180:210, 5:35, 5:35] = 1  # 27 000 voxels
    grid = Grid.axial(label.shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    foreground = np.argwhere(label).astype(np.int32)
    order, starts = _by_nodule(label, foreground)
    sample = Sample("two", np.zeros(label.shape, dtype=np.float16), label, grid, foreground, by_nodule=order,
                    nodule_starts=starts)
    assert sample.n_nodules == 2 and sorted(np.diff(starts)) == [27, 27000]
    def small_share(per_nodule: bool) -> float:
        sampler = PatchSampler([sample], (8, 8, 8), 1.0, np.random.default_rng(1), per_nodule=per_nodule)
        return sum(sampler._corner(sample, True)[0] < 100 for _ in range(600)) / 600

    assert 0.4 < small_share(True) < 0.6
    assert small_share(False) < 0.02  # by voxel: 27 of 27 027
