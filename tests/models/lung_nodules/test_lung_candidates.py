"""Probability map -> measured nodules, on synthetic volumes with analytic ellipsoids."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.axes import axes_of
from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.geometry import GeometryError, Grid, reorient_axial, resample
from models.lung_nodules.lungrads import NoduleType

SPACING = (1.25, 0.7, 0.7)  # native grid: 1.25 mm slices, 0.7 mm pixels
SHAPE = (48, 140, 200)


def _occupancy(grid: Grid, centre: tuple[float, float, float], semi: tuple[float, float, float], n: int = 4
               ) -> np.ndarray:
    """Fraction of each voxel inside an axis-aligned ellipsoid (x, y, z semi-axes), by sub-sampling."""
    occ = np.zeros(grid.shape, dtype=np.float32)
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    z = oz + sz * np.arange(grid.shape[0])
    y = oy + sy * np.arange(grid.shape[1])
    x = ox + sx * np.arange(grid.shape[2])
    offs = (np.arange(n) + 0.5) / n - 0.5
    for dz in offs:
        zz = ((z + dz * sz - centre[2]) / semi[2])[:, None, None] ** 2
        for dy in offs:
            yy = ((y + dy * sy - centre[1]) / semi[1])[None, :, None] ** 2
            for dx in offs:
                xx = ((x + dx * sx - centre[0]) / semi[0])[None, None, :] ** 2
                occ += (xx + yy + zz) <= 1.0
    return occ / n ** 3


@pytest.fixture(scope="module")
def scene() -> dict:
    grid = Grid.axial(SHAPE, SPACING, (-70.0, -49.0, 0.0))
    hu = np.full(SHAPE, -860.0, dtype=np.float32)
    wall = grid.to_mm(np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1))[..., 0] > 60.0
    hu[wall] = 40.0  # chest wall on the patient's left (x > 60 mm)
    solid = _occupancy(grid, (-40.0, 0.0, 30.0), (5.0, 3.5, 4.0))
    ggo = _occupancy(grid, (-10.0, 10.0, 30.0), (4.0, 4.0, 4.0))
    part = _occupancy(grid, (20.0, -15.0, 30.0), (6.0, 6.0, 5.0))
    core = _occupancy(grid, (20.0, -15.0, 30.0), (2.5, 2.5, 2.5))
    juxta = _occupancy(grid, (56.5, 20.0, 30.0), (3.5, 5.0, 4.0))  # touches the wall at x = 60
    hu = hu * (1 - solid) + 30.0 * solid
    hu = hu * (1 - ggo) - 620.0 * ggo
    hu = hu * (1 - part) - 620.0 * part + core * (20.0 + 620.0)
    hu = np.where(wall, hu, hu * (1 - juxta) + 40.0 * juxta)
    hu += np.random.default_rng(0).normal(0, 12.0, SHAPE).astype(np.float32)
    truth = (solid >= 0.5) | (ggo >= 0.5) | (part >= 0.5) | ((juxta >= 0.5) & ~wall)
    net = grid.resampled((1.0, 1.0, 1.0))
    prob = np.clip(resample(truth.astype(np.float32), grid, net), 0, 1)
    lung = resample((~wall).astype(np.float32), grid, net) >= 0.5
    return {"grid": grid, "hu": hu, "net": net, "prob": prob, "lung": lung}


def _by_x(nodules: list, x: float):  # type: ignore[no-untyped-def]
    return min(nodules, key=lambda n: abs(n.centre_mm[0] - x))


def test_measures_types_and_location(scene: dict) -> None:
    nodules = find_nodules(scene["prob"], scene["net"], scene["hu"], scene["grid"], scene["lung"])
    assert len(nodules) == 4
    solid, ggo, part, juxta = (_by_x(nodules, x) for x in (-40.0, -10.0, 20.0, 56.5))
    assert solid.long_axis_mm == pytest.approx(10.0, abs=0.6)
    assert solid.short_axis_mm == pytest.approx(7.0, abs=0.6)
    assert solid.mean_diameter_mm == pytest.approx(8.5, abs=0.5)
    assert solid.volume_mm3 == pytest.approx(4 / 3 * np.pi * 5 * 3.5 * 4, rel=0.15)
    assert solid.centre_mm == pytest.approx((-40.0, 0.0, 30.0), abs=0.5)
    assert solid.nodule_type is NoduleType.SOLID and not solid.location.juxtapleural
    assert ggo.nodule_type is NoduleType.GROUND_GLASS and ggo.solid_diameter_mm == 0.0
    assert ggo.mean_diameter_mm == pytest.approx(8.0, abs=0.6)
    assert part.nodule_type is NoduleType.PART_SOLID
    assert part.mean_diameter_mm == pytest.approx(12.0, abs=0.7)
    assert part.solid_diameter_mm == pytest.approx(5.0, abs=0.8)
    assert juxta.location.juxtapleural and juxta.location.benign_features
    assert juxta.nodule_type is NoduleType.SOLID
    assert solid.location.side == "right" and part.location.side == "left"
    assert {n.location.zone for n in nodules} == {"middle"}


def test_score_threshold_and_size_limits(scene: dict) -> None:
    weak = scene["prob"] * 0.6
    assert find_nodules(weak, scene["net"], scene["hu"], scene["grid"], scene["lung"],
                        CandidateSettings(min_score=0.7)) == []
    assert len(find_nodules(weak, scene["net"], scene["hu"], scene["grid"], scene["lung"],
                            CandidateSettings(min_score=0.55))) == 4
    blob = np.ones_like(scene["prob"])
    assert find_nodules(blob, scene["net"], scene["hu"], scene["grid"], None) == []  # 100 ml limit


def test_an_outline_of_air_is_not_a_nodule(scene: dict) -> None:
    prob = scene["prob"].copy()
    net = scene["net"]
    centre = np.round(net.to_index(np.array([[-40.0, -30.0, 30.0]]))[0]).astype(int)  # lung only: -860 HU
    prob[tuple(slice(c - 3, c + 4) for c in centre)] = 0.9
    found = find_nodules(prob, net, scene["hu"], scene["grid"], scene["lung"])
    air = _by_x([n for n in found if n.centre_mm[1] < -20], -40.0)
    assert air.mean_hu < -800
    kept = find_nodules(prob, net, scene["hu"], scene["grid"], scene["lung"], CandidateSettings(min_mean_hu=-800.0))
    assert len(kept) == 4 and all(n.mean_hu >= -800 for n in kept)  # the ground-glass nodule (-620 HU) stays


def test_without_lung_mask_zone_is_unknown(scene: dict) -> None:
    nodules = find_nodules(scene["prob"], scene["net"], scene["hu"], scene["grid"], None)
    assert nodules and all(n.location.zone == "unknown" and not n.location.juxtapleural for n in nodules)


def test_axes_of_an_ellipse_is_subpixel() -> None:
    pixel = 0.7
    r, c = np.mgrid[0:41, 0:41]
    field = np.zeros((41, 41))
    for dr in np.linspace(-0.4, 0.4, 5):
        for dc in np.linspace(-0.4, 0.4, 5):
            y, x = (r + dr - 20) * pixel, (c + dc - 20) * pixel
            u, v = x * np.cos(0.5) + y * np.sin(0.5), -x * np.sin(0.5) + y * np.cos(0.5)
            field += (u / 5) ** 2 + (v / 3) ** 2 <= 1
    axes = axes_of(field / 25, (pixel, pixel))
    assert axes.long_mm == pytest.approx(10.0, abs=0.35)
    assert axes.short_mm == pytest.approx(6.0, abs=0.35)


def test_resample_and_reorient() -> None:
    grid = Grid.axial((10, 20, 30), (2.5, 0.7, 0.7), (-10.0, -7.0, 100.0))
    a = np.random.default_rng(1).random(grid.shape).astype(np.float32)
    target = grid.resampled((1.25, 0.7, 0.7))
    b = resample(a, grid, target)
    np.testing.assert_allclose(b[::2], a, atol=1e-6)
    np.testing.assert_allclose(b[1::2][:9], (a[:-1] + a[1:]) / 2, atol=1e-6)
    flipped = grid.affine.copy()
    flipped[:3, 0] *= -1
    flipped[:3, 3] = grid.to_mm(np.array([9.0, 0.0, 0.0]))
    back, g = reorient_axial(a[::-1], Grid(grid.shape, flipped))
    np.testing.assert_array_equal(back, a)
    np.testing.assert_allclose(g.affine, grid.affine)
    with pytest.raises(GeometryError, match="differs"):
        resample(a[:5], grid, target)


def _vessel_scene(nodule_hu: float, core_semi: float = 0.0) -> tuple[np.ndarray, Grid, np.ndarray, Grid]:
    """A 6 mm-radius nodule with a vessel (1.2 mm radius, along z) running across its edge, drawn as the
    phantoms draw them: the vessel first, the nodule over it. The probability map covers the nodule only."""
    shape = (40, 80, 80)
    grid = Grid.axial(shape, (1.0, 0.7, 0.7), (-28.0, -28.0, 0.0))
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    mm = grid.to_mm(idx)
    vessel = (mm[..., 0] - 5.6) ** 2 + mm[..., 1] ** 2 <= 1.2 ** 2
    hu = np.where(vessel, 40.0, -860.0).astype(np.float32)
    occ = _occupancy(grid, (0.0, 0.0, 20.0), (6.0, 6.0, 6.0))
    hu = hu * (1 - occ) + nodule_hu * occ
    if core_semi:
        core = _occupancy(grid, (0.0, 0.0, 20.0), (core_semi, core_semi, core_semi))
        hu = hu + core * (20.0 - nodule_hu)
    hu += np.random.default_rng(1).normal(0, 10.0, shape).astype(np.float32)
    net = grid.resampled((1.0, 1.0, 1.0))
    prob = np.clip(resample((occ >= 0.5).astype(np.float32), grid, net), 0, 1)
    return hu, grid, prob, net


@pytest.mark.parametrize(("nodule_hu", "core_semi", "want"), [
    (-620.0, 0.0, NoduleType.GROUND_GLASS),  # the vessel crossing its edge is not a solid component
    (-620.0, 2.5, NoduleType.PART_SOLID),  # a core inside the ground glass is
    (30.0, 0.0, NoduleType.SOLID),  # a solid nodule touching a vessel stays solid
])
def test_a_vessel_across_the_edge_is_not_a_solid_component(nodule_hu: float, core_semi: float,
                                                            want: NoduleType) -> None:
    hu, grid, prob, net = _vessel_scene(nodule_hu, core_semi)
    (nodule,) = find_nodules(prob, net, hu, grid)
    assert nodule.nodule_type is want
    assert nodule.mean_diameter_mm == pytest.approx(12.0, abs=1.0)
    if want is NoduleType.PART_SOLID:
        assert nodule.solid_diameter_mm == pytest.approx(5.0, abs=0.8)
