"""Cine phantoms: reproducible, truth volumes agree with the analytic shapes, base descends, valid DICOM."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from training.cardiac_mri.dicom import write_series
from training.cardiac_mri.phantom import LV_MYO, LV_POOL, RV_POOL, make_params, render, render_all, truth_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import dciodvfy_errors, have_tool


def test_same_seed_same_images() -> None:
    a, b = make_params(4), make_params(4)
    assert a == b
    ia, la = render(a, 3, 4)
    ib, lb = render(b, 3, 4)
    assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    assert make_params(5) != a


def test_geometry_ranges() -> None:
    for seed in range(10):
        p = make_params(seed)
        assert 8 <= p.n_slices <= 14 and 16 <= p.n_phases <= 25
        assert p.gap_mm in (0.0, 1.0, 2.0, 4.0)


def test_truth_edv_matches_the_analytic_discs() -> None:
    """At end-diastole the LV cavity is a half ellipsoid: sum of pi r(s)^2 x (thickness + gap)."""
    p = make_params(2)
    truth = truth_function(p)
    assert truth.lv.ed_phase == 0
    step = p.thickness_mm + p.gap_mm
    analytic = 0.0
    for k in range(p.n_slices):
        s = p.first_slice_s + k * step
        if 0 <= s < p.length:
            analytic += math.pi * p.r_endo**2 * (1 - (s / p.length) ** 2) * step / 1000
    assert truth.lv.edv_ml == pytest.approx(analytic, rel=0.03)


def test_end_systole_near_t_es_and_ef_plausible() -> None:
    for seed in (0, 1, 2):
        p = make_params(seed)
        truth = truth_function(p)
        assert abs(truth.lv.es_phase / p.n_phases - p.t_es) <= 1.5 / p.n_phases
        assert 10 <= truth.lv.ef_pct <= 85
        assert truth.rv is not None and truth.rv.edv_ml > truth.rv.esv_ml > 0


def test_base_descends_basal_slice_is_atrial_at_end_systole() -> None:
    def basal_slice_in_descent(seed: int) -> bool:
        q = make_params(seed)
        levels = [q.first_slice_s + k * (q.thickness_mm + q.gap_mm) for k in range(q.n_slices)]
        return any(0.5 < s < q.base_descent - 1.0 for s in levels)

    p = make_params(next(s for s in range(50) if basal_slice_in_descent(s)))
    truth = truth_function(p)
    _, labels = render_all(p, with_image=False)
    lv_slices = [set(np.nonzero((labels[ph] == LV_POOL).any(axis=(1, 2)))[0]) for ph in range(p.n_phases)]
    assert lv_slices[truth.lv.es_phase] < lv_slices[truth.lv.ed_phase]  # fewer slices at ES


def test_papillary_muscles_are_dark_but_labelled_blood_pool() -> None:
    p = make_params(0)
    k = next(k for k in range(p.n_slices)
             if 0.3 * p.length < p.first_slice_s + k * (p.thickness_mm + p.gap_mm) < 0.7 * p.length)
    image, labels = render(p, 0, k)
    pool = labels == LV_POOL
    blood = np.median(image[pool])
    assert (image[pool] < 0.6 * blood).sum() >= 6  # dark papillary pixels inside the pool label
    assert (labels == LV_MYO).any() and (labels == RV_POOL).any()


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_dicom_series(tmp_path: Path) -> None:
    p = make_params(1)
    images, _ = render_all(p)
    paths = write_series(p, images, tmp_path)
    assert len(paths) == p.n_slices * p.n_phases
    a, b = pydicom.dcmread(paths[0]), pydicom.dcmread(paths[p.n_phases])  # slice 0 and 1, phase 0
    gap = np.linalg.norm(np.subtract(b.ImagePositionPatient, a.ImagePositionPatient)) - float(a.SliceThickness)
    assert gap == pytest.approx(p.gap_mm, abs=1e-3)
    assert float(pydicom.dcmread(paths[1]).TriggerTime) > float(a.TriggerTime)
    assert a.PatientSex == p.sex and int(a.HeartRate) == round(p.heart_rate_bpm)
    assert dciodvfy_errors(paths[0]) == []
