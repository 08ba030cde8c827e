"""Mammography and cardiac MR phantom families B (issue 28): measured differences from family A, truth at its
edges (mass boxes in the breast of their laterality, EF from the label volumes), valid DICOM."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from training.cardiac_mri.phantom import LV_POOL, make_params, render_all
from training.cardiac_mri.phantom_b import make_cine_b, write_cine_b
from training.mammography.phantom import make_exam, to_working
from training.mammography.phantom_b import make_exam_b, write_exam_b

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peers import dciodvfy_errors, have_tool


def _spectrum_slope(image: np.ndarray, region: np.ndarray) -> float:
    """Slope of the radial power spectrum (log-log) of the largest square patch inside *region*."""
    r, c = np.nonzero(region)
    r0, c0 = int(np.median(r)), int(np.median(c))
    for h in (256, 192, 128, 96, 64):
        patch = (slice(r0 - h // 2, r0 + h // 2), slice(c0 - h // 2, c0 + h // 2))
        if region[patch].shape == (h, h) and region[patch].all():
            break
    else:
        pytest.fail("no square patch inside the breast")
    p = image[patch] - image[patch].mean()
    window = np.hanning(h)[:, None] * np.hanning(h)[None]
    ps = np.abs(np.fft.fftshift(np.fft.fft2(p * window))) ** 2
    y, x = np.indices(ps.shape) - h // 2
    f = np.hypot(x, y).astype(int)
    radial = np.bincount(f.ravel(), ps.ravel()) / np.maximum(np.bincount(f.ravel()), 1)
    k = np.arange(2, h // 4)
    return float(np.polyfit(np.log(k), np.log(radial[k]), 1)[0])


def test_mammo_family_b_differs_in_field_and_texture() -> None:
    slopes_a, slopes_b = [], []
    for seed in range(4):
        a, b = to_working(make_exam(seed).views[("R", "CC")]), make_exam_b(seed)
        vb = to_working(b.views[("R", "CC")])
        assert vb.image.shape != a.image.shape  # a larger detector field
        slopes_a.append(_spectrum_slope(a.image, a.breast & ~a.pectoral))
        slopes_b.append(_spectrum_slope(vb.image, vb.breast & ~vb.pectoral))
    print("texture power-spectrum slope A", np.round(slopes_a, 2), "B", np.round(slopes_b, 2))
    assert np.mean(slopes_b) < np.mean(slopes_a) - 0.3
    assert {make_exam_b(s).texture for s in range(6)} == {"lumpy", "power-law"}
    assert len({make_exam_b(s).window for s in range(3)}) == 3  # each exam its own display window


def test_mammo_mass_boxes_in_the_breast_of_their_laterality() -> None:
    found = 0
    for seed in range(8):
        exam = make_exam_b(seed, lesion_sides=("L",))
        for (laterality, view), v in exam.views.items():
            assert v.laterality == laterality and v.view == view
            if laterality == "R":
                assert not v.lesions and not v.mass.any()
            for lesion in v.lesions:
                r0, c0, r1, c1 = (int(round(x)) for x in lesion.box)
                centre = (min((r0 + r1) // 2, v.breast.shape[0] - 1), min((c0 + c1) // 2, v.breast.shape[1] - 1))
                assert v.breast[centre], (seed, view, lesion)
                if lesion.kind == "mass":
                    assert v.mass[r0:r1, c0:c1].any()
                    assert v.breast[r0:r1, c0:c1].mean() > 0.9
                    found += 1
        assert exam.breast_category.keys() == {"R", "L"}
        assert all(c in "abcd" for c in exam.breast_category.values())
    assert found >= 2


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_mammo_family_b_dicom(tmp_path: Path) -> None:
    exam = make_exam_b(3)
    paths = write_exam_b(exam, tmp_path, sigmoid=True)
    ds = pydicom.dcmread(paths[0])
    assert ds.BitsStored == 14 and ds.VOILUTFunction == "SIGMOID"
    assert float(ds.WindowWidth) == pytest.approx(exam.window[1], abs=0.1)
    assert dciodvfy_errors(paths[0]) == []


def test_cardiac_family_b_differs_bias_slices_and_coverage() -> None:
    cines = [make_cine_b(s) for s in range(8)]
    counts_b = {c.labels.shape[1] for c in cines}
    counts_a = {make_params(s).n_slices for s in range(8)}
    print("slice counts A", sorted(counts_a), "B", sorted(counts_b), "gaps B", sorted({c.geometry.gap_mm for c in cines}))
    assert max(counts_b) > max(counts_a) or min(counts_b) < min(counts_a)
    assert not all(c.info["base_covered"] and c.info["apex_covered"] for c in cines)  # partial coverage happens
    for c in cines[:3]:  # the smooth multiplicative bias field the generator applied spans > 15 %
        assert c.info["bias_range"][1] / c.info["bias_range"][0] > 1.15, c.info
    # breathing misregistration: the LV centre moves between slices at end-diastole
    c = cines[1]
    centres = [np.argwhere(c.labels[0, k] == LV_POOL).mean(axis=0) for k in range(c.labels.shape[1])
               if (c.labels[0, k] == LV_POOL).sum() > 50]
    assert np.ptp(np.array(centres), axis=0).max() > 0.5


def test_cardiac_family_b_ef_from_label_volumes() -> None:
    for seed in (0, 2):
        c = make_cine_b(seed)
        truth = c.truth()
        area = c.geometry.pixel_spacing_mm[0] * c.geometry.pixel_spacing_mm[1]
        step = c.geometry.slice_thickness_mm + c.geometry.gap_mm
        volumes = (c.labels == LV_POOL).sum(axis=(2, 3)).sum(axis=1) * area * step / 1000.0
        edv, esv = volumes.max(), volumes.min()
        print(f"seed {seed}: labels EDV {edv:.1f} ESV {esv:.1f} EF {100 * (edv - esv) / edv:.1f}; truth "
              f"{truth.lv.edv_ml:.1f} {truth.lv.esv_ml:.1f} {truth.lv.ef_pct:.1f}")
        assert truth.lv.edv_ml == pytest.approx(edv, rel=0.01)
        assert truth.lv.esv_ml == pytest.approx(esv, rel=0.01)
        assert truth.lv.ef_pct == pytest.approx(100 * (edv - esv) / edv, abs=0.5)
    a_images, _ = render_all(make_params(0))
    assert a_images.shape[1] != make_cine_b(0).images.shape[1] or a_images.shape[0] != make_cine_b(0).images.shape[0]


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_cardiac_family_b_dicom(tmp_path: Path) -> None:
    cine = make_cine_b(2)
    paths = write_cine_b(cine, tmp_path)
    phases, slices = cine.images.shape[:2]
    assert len(paths) == phases * slices
    a, b = pydicom.dcmread(paths[0]), pydicom.dcmread(paths[phases])
    step = np.linalg.norm(np.subtract(b.ImagePositionPatient, a.ImagePositionPatient))
    assert step == pytest.approx(cine.geometry.slice_thickness_mm + cine.geometry.gap_mm, abs=1e-3)
    assert dciodvfy_errors(paths[0]) == []
