"""Calcium phantoms: reproducible, truth per lesion, bone present but never coronary, valid DICOM."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from models.coronary_ct.calcium import CORONARIES, Vessel, score
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import Truth, make_phantom, truth_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import dciodvfy_errors, have_tool


def test_same_seed_same_phantom_other_seed_differs() -> None:
    a, b, c = make_phantom(7), make_phantom(7), make_phantom(8)
    assert np.array_equal(a.hu, b.hu) and a.calcifications == b.calcifications
    assert a.hu.shape != c.hu.shape or not np.array_equal(a.hu, c.hu)


def test_geometry_in_the_stated_ranges() -> None:
    for seed in range(4):
        p = make_phantom(seed)
        assert 0.68 <= p.pixel_spacing_mm <= 0.9 and p.increment_mm in (2.5, 3.0)
        assert p.hu.dtype == np.float32 and np.array_equal(p.hu, np.round(p.hu))  # integer HU like a scanner


def test_truth_has_bone_confounders_and_coronary_lesions_by_vessel() -> None:
    p = make_phantom(3)
    lesions, truth, result = truth_score(p)
    kinds = {t for t in truth}
    assert Truth.BONE in kinds and Truth.EXTRA_CORONARY in kinds
    coronary_kinds = {c.kind for c in p.calcifications if c.kind in {v.value for v in CORONARIES}}
    found = {t.vessel.value for t in truth if t.vessel is not Vessel.NONE}
    assert found and found <= coronary_kinds
    # the truth score counts exactly the truly coronary lesions
    manual = sum(les.agatston_raw for les, t in zip(lesions, truth) if t.vessel is not Vessel.NONE)
    assert result.total.agatston == pytest.approx(manual * p.increment_mm / 3)
    assert result.total.lesion_count == sum(1 for t in truth if t.vessel is not Vessel.NONE)


def test_counting_everything_over_130_would_count_bone() -> None:
    p = make_phantom(3)
    lesions, truth, result = truth_score(p)
    naive = score(lesions, [Vessel.LAD] * len(lesions), p.geometry)
    assert naive.total.agatston > 10 * max(result.total.agatston, 1.0)


def test_a_phantom_without_coronary_calcium_scores_zero() -> None:
    seed = next(s for s in range(200) if not any(c.kind in ("LM", "LAD", "LCx", "RCA")
                                                  for c in make_phantom(s).calcifications))
    _, truth, result = truth_score(make_phantom(seed))
    assert result.total.agatston == 0 and result.cac_drs == "A0"
    assert all(t.vessel is Vessel.NONE for t in truth)


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_dicom_series_round_trip_and_valid(tmp_path: Path) -> None:
    p = make_phantom(1)
    paths = write_series(p, tmp_path)
    assert len(paths) == p.hu.shape[0]
    ds = pydicom.dcmread(paths[5])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(hu, p.hu[5])
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(p.origin_mm[2] + 5 * p.increment_mm, abs=1e-3)
    assert dciodvfy_errors(paths[0]) == []
