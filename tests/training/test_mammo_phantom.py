"""Mammography phantoms: reproducible, density as asked, lesions consistent across CC and MLO, valid DICOM."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import dciodvfy_errors
from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig, make_exam

LESIONS = PhantomConfig(spacing_mm=0.5, lesion_rate=1.0, max_lesions_per_breast=2)


def test_same_seed_same_exam_other_seed_other_exam() -> None:
    a, b, c = make_exam(7, LESIONS), make_exam(7, LESIONS), make_exam(8, LESIONS)
    for key in a.views:
        np.testing.assert_array_equal(a.views[key].image, b.views[key].image)
        assert a.views[key].lesions == b.views[key].lesions
    assert not np.array_equal(a.views[("L", "CC")].image, c.views[("L", "CC")].image)


@pytest.mark.parametrize("target", [10.0, 40.0, 80.0])
def test_percent_dense_follows_the_target(target: float) -> None:
    exam = make_exam(3, PhantomConfig(spacing_mm=0.5, percent_dense_range=(target, target)))
    for side, pd in exam.breast_percent_dense.items():
        assert abs(pd - target) < 10.0, (side, pd)  # the sides differ by N(0, 2.5) points around the patient value
    for pv in exam.views.values():
        assert not (pv.dense & pv.pectoral).any() and not (pv.dense & ~pv.breast).any()


def test_density_categories_cover_a_to_d() -> None:
    cats = {make_exam(s, PhantomConfig(spacing_mm=1.0)).exam_category for s in range(40)}
    assert cats == {"a", "b", "c", "d"}


def test_lesions_are_placed_consistently_on_cc_and_mlo() -> None:
    seen = 0
    for seed in range(6):
        exam = make_exam(seed, LESIONS)
        for side in ("L", "R"):
            cc, mlo = exam.views[(side, "CC")], exam.views[(side, "MLO")]
            assert [t.lesion_id for t in cc.lesions] == [t.lesion_id for t in mlo.lesions]
            for t_cc, t_mlo in zip(cc.lesions, mlo.lesions):
                seen += 1
                assert (t_cc.kind, t_cc.depth_mm) == (t_mlo.kind, t_mlo.depth_mm)
                for pv, t in ((cc, t_cc), (mlo, t_mlo)):
                    depth = (pv.nipple_rc[1] - t.centre_rc[1]) * pv.spacing_mm
                    assert depth == pytest.approx(t.depth_mm, abs=1e-6)
                    r0, c0, r1, c1 = t.box
                    assert r0 <= t.centre_rc[0] <= r1 and c0 <= t.centre_rc[1] <= c1
                    inside = pv.breast[int(r0):int(r1), int(c0):int(c1)]
                    assert inside.all()
    assert seen >= 6


def test_masses_are_brighter_than_their_surroundings_and_calcifications_are_spots() -> None:
    exam = make_exam(11, PhantomConfig(spacing_mm=0.25, lesion_rate=1.0, max_lesions_per_breast=2, mass_fraction=0.5))
    kinds = set()
    for pv in exam.views.values():
        for t in pv.lesions:
            kinds.add(t.kind)
            r0, c0, r1, c1 = (int(v) for v in t.box)
            box = pv.image[r0:r1, c0:c1]
            ring = pv.image[max(0, r0 - 20):r1 + 20, max(0, c0 - 20):c1 + 20]
            if t.kind == "mass":
                assert pv.mass[r0:r1, c0:c1].any()
                assert np.median(box) > np.median(ring)
            else:
                assert pv.calc[r0:r1, c0:c1].any()
                assert box.max() > np.median(ring) + 0.2
    assert kinds == {"mass", "calcification_cluster"}


def test_phantom_dicom_is_valid_mammography(tmp_path: Path) -> None:
    exam = make_exam(5, PhantomConfig(spacing_mm=1.0))
    paths = write_exam(exam, tmp_path / "pres", MgStudyOptions(magnification=1.1))
    assert len(paths) == 4
    for path in paths:
        ds = dcmread(path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(1.1)
        assert dciodvfy_errors(path) == []
    processing = write_exam(exam, tmp_path / "proc", MgStudyOptions(for_processing=True))
    assert dcmread(processing[0]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2.1"
    assert dciodvfy_errors(processing[0]) == []


@pytest.mark.parametrize("spacing", [0.2, 0.5])
def test_to_working_resamples_image_and_truth_together(spacing: float) -> None:
    from training.mammography.phantom import to_working

    exam = make_exam(12, PhantomConfig(spacing_mm=spacing, lesion_rate=1.0, mass_fraction=1.0))
    for native in exam.views.values():
        pv = to_working(native)
        assert pv.spacing_mm == 0.25
        assert pv.image.shape[0] == round(native.image.shape[0] * spacing / 0.25)
        assert abs(pv.percent_dense - native.percent_dense) < 2.0
        for t_native, t in zip(native.lesions, pv.lesions):
            assert t.depth_mm == t_native.depth_mm
            r, c = (int(round(v)) for v in t.centre_rc)
            assert pv.mass[r, c]  # the scaled centre still lies in the resampled mass
            assert t.box[0] <= t.centre_rc[0] <= t.box[2] and t.box[1] <= t.centre_rc[1] <= t.box[3]
            assert t.box[2] - t.box[0] == pytest.approx((t_native.box[2] - t_native.box[0]) * spacing / 0.25,
                                                        rel=0.02)
