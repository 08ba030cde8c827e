"""A gantry-tilted chest CT is refused by the lung pipeline with the series and the angle (issue 28, item 4):
its grids and measures assume slices perpendicular to the stack."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from factories import make_slices
from imaging.volume import Volume, load_volume
from models.errors import NoSuitableSeries
from models.lung_nodules.pipeline import MAX_TILT_DEG, refuse_tilted, tilt_of


def _tilted_volume(tmp_path: Path, tilt_deg: float) -> Volume:
    tilt = math.radians(tilt_deg)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt))  # image plane tilted about x
    positions = [(-10.0, -12.0, 4.0 + 2.5 * k) for k in range(5)]  # table motion along z, not along the normal
    voxels = np.full((5, 16, 16), -800, dtype=np.int16)
    return load_volume(make_slices(tmp_path, voxels, positions, orientation=orientation))


@pytest.mark.parametrize("tilt_deg", [0.0, 0.9])
def test_an_untilted_or_slightly_tilted_series_is_kept(tmp_path: Path, tilt_deg: float) -> None:
    volume = _tilted_volume(tmp_path, tilt_deg)
    assert refuse_tilted(volume) is volume
    assert tilt_of(volume) == pytest.approx(tilt_deg, abs=0.01)


def test_a_tilted_series_is_refused_naming_series_and_angle(tmp_path: Path) -> None:
    volume = _tilted_volume(tmp_path, 12.0)
    assert tilt_of(volume) > MAX_TILT_DEG
    with pytest.raises(NoSuitableSeries, match=rf"series {volume.series_uid}: gantry tilt of 12.0 degrees"):
        refuse_tilted(volume)
