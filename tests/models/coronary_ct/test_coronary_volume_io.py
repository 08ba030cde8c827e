"""Series choice and the canonical axial layout: flipped storage gives the same lesions; non-axial is refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factories import ORIENTATIONS, make_ct_series
from imaging.volume import load_volume
from models.coronary_ct.calcium import find_lesions
from models.coronary_ct.volume_io import Canonical, canonical_hu, choose_series, scan_geometry
from models.errors import NoSuitableSeries


def _hu(n: int = 12) -> np.ndarray:
    hu = np.full((n, 32, 32), 40.0, dtype=np.float32)
    hu[3, 5:8, 20:24] = 300.0  # a lesion low (k=3), anterior-left (small row, large column)
    return hu


def test_standard_axial_needs_no_flip(tmp_path: Path) -> None:
    files = make_ct_series(tmp_path, n_slices=12, rows=32, cols=32, spacing=(0.5, 0.5, 3.0), voxels=_hu())
    volume = load_volume(files)
    hu, canon = canonical_hu(volume)
    assert canon == Canonical(False, False, False)
    assert scan_geometry(volume).increment_mm == pytest.approx(3.0)
    (les,) = find_lesions(hu, scan_geometry(volume))
    assert les.slice_index == 3 and les.centroid_rc == pytest.approx((6.0, 21.5))


def test_flipped_rows_and_columns_are_flipped_back(tmp_path: Path) -> None:
    flipped = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # rows toward anterior, columns toward the right
    hu = _hu()[:, ::-1, ::-1]
    files = make_ct_series(tmp_path, n_slices=12, rows=32, cols=32, spacing=(0.5, 0.5, 3.0), voxels=hu,
                           orientation=flipped, origin=(100.0, 100.0, 0.0))
    volume = load_volume(files)
    canonical, canon = canonical_hu(volume)
    assert canon.flip_r and canon.flip_c
    assert np.array_equal(canonical, _hu())
    mask = np.zeros(canonical.shape, dtype=bool)
    mask[3, 6, 21] = True
    assert canon.to_source(mask)[3, 32 - 1 - 6, 32 - 1 - 21]  # back on the source grid


def test_non_axial_is_refused(tmp_path: Path) -> None:
    files = make_ct_series(tmp_path, n_slices=12, rows=32, cols=32, orientation=ORIENTATIONS["coronal"])
    with pytest.raises(NoSuitableSeries):
        canonical_hu(load_volume(files))


def test_choose_the_3mm_series(tmp_path: Path) -> None:
    study = "1.2.3.4.5"
    thin = make_ct_series(tmp_path / "a", n_slices=12, spacing=(0.7, 0.7, 1.0), study_uid=study, description="1mm")
    cac = make_ct_series(tmp_path / "b", n_slices=12, spacing=(0.7, 0.7, 3.0), study_uid=study, description="3mm")
    few = make_ct_series(tmp_path / "c", n_slices=4, spacing=(0.7, 0.7, 2.5), study_uid=study, description="2.5mm")
    routed = {"a": tuple(thin), "b": tuple(cac), "c": tuple(few)}
    chosen = choose_series(routed, {"Modality": "^CT$", "SliceThickness": [2.0, 3.5]}, study)
    assert chosen.description == "3mm"
    with pytest.raises(NoSuitableSeries):
        choose_series({"a": tuple(thin)}, {"Modality": "^CT$", "SliceThickness": [2.0, 3.5]}, study)
