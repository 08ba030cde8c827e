"""Matching nodules with a prior exam: new, growing, stable, VDT."""
from __future__ import annotations

import math

import pytest

from models.lung_nodules.candidates import Nodule
from models.lung_nodules.compare import compare, interval_days
from models.lung_nodules.lungrads import NoduleStatus, NoduleType
from models.lung_nodules.measures import MeasureError, sphere_volume_mm3
from models.lung_nodules.shape import Location


def _nodule(centre: tuple[float, float, float], mean_mm: float, ntype: NoduleType = NoduleType.SOLID,
            solid_mm: float | None = None) -> Nodule:
    solid = mean_mm if solid_mm is None else solid_mm
    return Nodule(score=0.9, centre_mm=centre, long_axis_mm=mean_mm, short_axis_mm=mean_mm, mean_diameter_mm=mean_mm,
                  volume_mm3=sphere_volume_mm3(mean_mm), nodule_type=ntype, solid_diameter_mm=solid,
                  mean_hu=20.0, location=Location("left", "upper", False), slice_index=0)


def test_interval_days() -> None:
    assert interval_days("20250105", "20260110") == 370.0
    with pytest.raises(MeasureError, match="not before"):
        interval_days("20260110", "20260110")
    with pytest.raises(MeasureError, match="YYYYMMDD"):
        interval_days("2025-01-05", "20260110")


def test_no_prior_is_baseline() -> None:
    assert [c.status for c in compare([_nodule((0, 0, 0), 6.0)], None, 0.0)] == [NoduleStatus.BASELINE]


def test_new_growing_stable_and_vdt() -> None:
    prior = [_nodule((10, 0, 0), 6.0), _nodule((-40, 20, 0), 8.0)]
    current = [_nodule((11, 1, 0), 8.0),    # +2.0 mm: growing
               _nodule((-40, 20, 1), 9.5),  # +1.5 mm exactly: not growth
               _nodule((60, 60, 60), 5.0)]  # nowhere near: new
    out = compare(current, prior, 365.0)
    assert [c.status for c in out] == [NoduleStatus.GROWING, NoduleStatus.STABLE, NoduleStatus.NEW]
    assert out[0].delta_mean_mm == 2.0 and out[0].prior_index == 0
    expected_vdt = 365.0 * math.log(2) / math.log((8.0 / 6.0) ** 3)
    assert out[0].vdt_days == pytest.approx(expected_vdt)
    assert out[2].vdt_days is None


def test_each_prior_nodule_matches_once() -> None:
    prior = [_nodule((0, 0, 0), 6.0)]
    out = compare([_nodule((1, 0, 0), 6.0), _nodule((2, 0, 0), 6.0)], prior, 100.0)
    assert [c.status for c in out] == [NoduleStatus.STABLE, NoduleStatus.NEW]


PS, GG = NoduleType.PART_SOLID, NoduleType.GROUND_GLASS


@pytest.mark.parametrize("prior, current, status, delta_solid", [
    # Lung-RADS v2022: "new or growing" refers to the SOLID component of a part-solid nodule
    ((10.0, PS, 3.0), (10.0, PS, 5.0), NoduleStatus.GROWING, 2.0),               # the case: solid 3 -> 5 mm
    ((10.0, PS, 3.0), (10.0, PS, 4.5), NoduleStatus.STABLE, 1.5),                # + 1.5 mm exactly: not growth
    ((10.0, PS, 3.0), (13.0, PS, 3.5), NoduleStatus.GROUND_GLASS_GROWING, 0.5),  # only the ground glass grew
    ((10.0, GG, 0.0), (10.5, PS, 2.0), NoduleStatus.GROWING, 2.0),               # a new solid component
    ((6.0, PS, 3.0), (6.5, NoduleType.SOLID, 6.5), NoduleStatus.STABLE, None),   # solid now: its mean diameter
])
def test_part_solid_growth_is_judged_on_the_solid_component(prior: tuple[float, NoduleType, float],
                                                            current: tuple[float, NoduleType, float],
                                                            status: NoduleStatus, delta_solid: float | None) -> None:
    out = compare([_nodule((0, 0, 0), current[0], current[1], current[2])],
                  [_nodule((0, 0, 0), prior[0], prior[1], prior[2])], 365.0)
    assert out[0].status is status
    assert out[0].delta_solid_mm == delta_solid
    assert out[0].delta_mean_mm == round(current[0] - prior[0], 1)


def test_ground_glass_growth_is_judged_on_the_mean_diameter() -> None:
    out = compare([_nodule((0, 0, 0), 12.0, GG, 0.0)], [_nodule((0, 0, 0), 10.0, GG, 0.0)], 200.0)
    assert out[0].status is NoduleStatus.GROWING and out[0].delta_solid_mm is None
