"""The labeller's patches are in mm: the same anatomy gives the same patch at any pixel spacing."""
from __future__ import annotations

import numpy as np
import pytest

from models.coronary_ct.calcium import ScanGeometry, find_lesions
from models.coronary_ct.patches import PATCH_SHAPE, lesion_patches


def _scene(ps: float, inc: float) -> tuple[np.ndarray, ScanGeometry]:
    """A 4 mm lesion at (z 30, y 40, x 40) mm and a 4 mm bright block 8 mm to its left (+x)."""
    n = int(round(80 / ps))
    hu = np.full((int(round(60 / inc)), n, n), 40.0, dtype=np.float32)
    k = int(round(30 / inc))
    c = int(round(40 / ps))
    h = int(round(2 / ps))
    hu[k, c - h:c + h, c - h:c + h] = 600.0
    d = int(round(8 / ps))
    hu[k, c - h:c + h, c + d - h:c + d + h] = 129.0  # below threshold: context only, not a lesion
    return hu, ScanGeometry((ps, ps), inc)


@pytest.mark.parametrize(("ps", "inc"), [(0.5, 3.0), (0.8, 2.5), (1.0, 3.0)])
def test_patch_is_in_mm(ps: float, inc: float) -> None:
    hu, geom = _scene(ps, inc)
    lesions = find_lesions(hu, geom)
    assert len(lesions) == 1
    x = lesion_patches(hu, geom, lesions)
    assert x.shape == (1, *PATCH_SHAPE) and x.dtype == np.float32
    fine, mask = x[0, 0, 3], x[0, 1, 3]
    assert fine[12, 12] == pytest.approx(600 / 400, abs=0.05)  # lesion at the centre (1 mm grid, 24 mm)
    assert fine[12, 19] == pytest.approx(129 / 400, abs=0.08)  # 8 mm to the left: column 11.5 + 8
    assert fine[12, 4] == pytest.approx(40 / 400, abs=0.05)
    assert mask[12, 12] == 1.0 and mask.sum() == pytest.approx(16, abs=6)  # ~4 x 4 mm at 1 mm
    assert x[0, 1, [0, 1, 2, 4, 5, 6]].sum() == 0  # the lesion channel only on its own slice


def test_outside_the_volume_is_air() -> None:
    hu, geom = _scene(1.0, 3.0)
    hu[:, :4, :4] = 500.0  # a lesion in the corner
    lesions = [les for les in find_lesions(hu, geom) if les.centroid_rc[0] < 5]
    x = lesion_patches(hu, geom, lesions[:1])
    assert x[0, 2, 3, 0, 0] == pytest.approx(-1000 / 500)  # coarse context beyond the edge


def test_no_lesions_gives_empty_batch() -> None:
    hu, geom = _scene(1.0, 3.0)
    assert lesion_patches(hu, geom, []).shape == (0, *PATCH_SHAPE)
