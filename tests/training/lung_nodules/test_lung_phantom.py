"""Chest CT phantoms: reproducible by seed, every nodule kind, ground truth consistent with the image."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from training.lung_nodules.phantom import Phantom, PhantomConfig, generate_phantom

SMALL = PhantomConfig(max_matrix=200, z_extent_mm=70.0, nodules=(3, 4), diameter_mm=(5.0, 16.0))


@pytest.fixture(scope="module")
def phantoms() -> list[Phantom]:
    return [generate_phantom(seed, SMALL) for seed in (11, 12, 13)]


def test_same_seed_same_phantom_other_seed_differs(phantoms: list[Phantom]) -> None:
    again = generate_phantom(11, SMALL)
    np.testing.assert_array_equal(again.hu, phantoms[0].hu)
    assert again.nodules == phantoms[0].nodules
    assert phantoms[1].hu.shape != phantoms[0].hu.shape or not np.array_equal(phantoms[1].hu, phantoms[0].hu)


def test_volume_spacing_affine_and_hu_range(phantoms: list[Phantom]) -> None:
    for p in phantoms:
        sz, sy, sx = p.spacing
        assert 0.6 <= sz <= 2.5 and sy == pytest.approx(sx)
        assert p.hu.dtype == np.int16 and p.hu.min() >= -1024
        assert p.affine[2, 0] == pytest.approx(sz)  # slices run feet to head (+z, LPS)
        lung_hu = float(np.median(p.hu[p.lung & (p.labels == 0)]))
        assert -900 < lung_hu < -800


def test_ground_truth_matches_the_image(phantoms: list[Phantom]) -> None:
    kinds = set()
    for p in phantoms:
        for n in p.nodules:
            kinds.add(n["kind"])
            mask = p.labels == n["label"]
            volume = mask.sum() * p.grid.voxel_volume_mm3
            assert volume == pytest.approx(n["volume_mm3"], rel=0.3), n
            centre = p.grid.to_mm(np.argwhere(mask).mean(axis=0))
            assert np.linalg.norm(centre - np.array(n["centre_mm"])) < 1.5
            core_hu = float(np.median(p.hu[ndimage.binary_erosion(mask)] if mask.sum() > 30 else p.hu[mask]))
            if n["type"] == "ground-glass":
                assert -760 < core_hu < -480, n
                assert n["solid_diameter_mm"] == 0.0
            elif n["type"] == "solid":
                assert core_hu > -250, n
                assert n["solid_diameter_mm"] == n["mean_diameter_mm"]
            else:
                assert 0 < n["solid_diameter_mm"] < n["mean_diameter_mm"]
                assert (p.solid_labels == n["label"]).sum() < mask.sum()
            assert n["mean_diameter_mm"] == pytest.approx((n["long_axis_mm"] + n["short_axis_mm"]) / 2, abs=0.06)
            assert n["side"] == ("right" if n["centre_mm"][0] < 0 else "left")
    assert len(kinds) >= 3


def test_juxtapleural_nodules_touch_the_chest_wall() -> None:
    config = PhantomConfig(max_matrix=200, z_extent_mm=80.0, nodules=(3, 3), kind_weights=(0, 0, 0, 1))
    p = generate_phantom(5, config)
    assert p.nodules and all(n["juxtapleural"] and n["type"] == "solid" for n in p.nodules)
    for n in p.nodules:
        shell = ndimage.binary_dilation(p.labels == n["label"], iterations=2) & (p.labels != n["label"])
        assert (shell & ~p.lung).any(), n  # reaches outside the lung: the pleura


def test_truth_json_is_complete(phantoms: list[Phantom]) -> None:
    doc = json.loads(phantoms[0].truth_json())
    assert doc["seed"] == 11 and doc["slice_thickness_mm"] == phantoms[0].spacing[0]
    keys = {"centre_mm", "long_axis_mm", "short_axis_mm", "mean_diameter_mm", "volume_mm3", "type",
            "solid_diameter_mm", "juxtapleural", "lung_rads", "side", "zone"}
    assert all(keys <= set(n) for n in doc["nodules"])


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="slice_mm"):
        PhantomConfig(slice_mm=(2.0, 1.0))
