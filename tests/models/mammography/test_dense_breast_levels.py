"""Issue 28, mammography density: an extremely dense breast has no fat more than 15 mm inside the skin, so the
fat level must come from the subcutaneous shell (:func:`models.mammography.preprocess.breast_levels`); a breast
with fat inside keeps the level measured there.

Family-B calibration seeds 50006 and 50023 (breasts 84-87 % dense) read 3-10 % dense before: d as a.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.mammography import preprocess
from models.mammography.density import intensity_dense, percent_dense_area
from models.mammography.preprocess import breast_levels, normalise, relative_to_breast
from models.mammography.segmentation import segment_breast
from training.mammography.phantom import PHANTOM_WINDOW, PhantomConfig, make_exam, to_working
from training.mammography.phantom_b import make_exam_b


def _view(family: str, seed: int, side: str, view: str):
    exam = make_exam(seed, PhantomConfig(lesion_rate=0.5)) if family == "a" else make_exam_b(seed)
    pv = to_working(exam.views[(side, view)])
    seg = segment_breast(pv.image, pv.spacing_mm, view)
    return pv, seg, normalise(pv.image, *getattr(exam, "window", PHANTOM_WINDOW))


def _intensity_percent(pv, seg, x, levels) -> float:
    tissue = seg.breast & ~seg.pectoral
    dense = intensity_dense(relative_to_breast(x, *levels), tissue, pv.spacing_mm)
    return percent_dense_area(dense, seg.breast, seg.pectoral)


@pytest.mark.parametrize(("seed", "side", "view"), [(50006, "R", "CC"), (50006, "L", "MLO"), (50023, "R", "MLO")])
def test_an_extremely_dense_breast_reads_dense(seed: int, side: str, view: str) -> None:
    pv, seg, x = _view("b", seed, side, view)
    assert pv.percent_dense > 80
    ours = _intensity_percent(pv, seg, x, breast_levels(x, seg.breast, seg.pectoral, pv.spacing_mm))
    assert abs(ours - pv.percent_dense) <= 15, (ours, pv.percent_dense)


@pytest.mark.parametrize(("family", "seed", "side", "view"),
                         [("a", 20000, "R", "CC"), ("a", 20008, "L", "MLO"), ("a", 20023, "R", "CC"),
                          ("b", 50000, "R", "CC"), ("b", 50010, "L", "CC"), ("b", 50016, "R", "MLO")])
def test_a_breast_with_fat_inside_keeps_its_level(family: str, seed: int, side: str, view: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Fatty to dense (7-83 %) breasts of both families, among them family A's lowest shell ratio (20023)."""
    pv, seg, x = _view(family, seed, side, view)
    ours = breast_levels(x, seg.breast, seg.pectoral, pv.spacing_mm)
    monkeypatch.setattr(preprocess, "SHELL_RATIO_MIN", 0.0)  # the interior's level only
    assert ours == breast_levels(x, seg.breast, seg.pectoral, pv.spacing_mm)


def test_a_shell_level_sets_the_fat_level_from_the_usual_ramp() -> None:
    """A synthetic breast: glandular interior (1.3 x fat above air) beyond 9 mm, fat in the shell, compressed
    thickness reaching full at 10 mm: the fat level comes out within 10 % of the fat the shell was drawn with."""
    rows, cols, mm = 400, 300, 0.25
    rr, cc = np.mgrid[0:rows, 0:cols]
    breast = ((rr - rows / 2) / 180.0) ** 2 + (cc / 260.0) ** 2 <= 1.0
    depth = ndimage.distance_transform_edt(np.pad(breast, ((0, 0), (1, 0)), mode="edge"))[:, 1:] * mm
    air, fat = 0.0, 0.5
    thickness = np.clip(0.4 + 0.6 * depth / 10.0, 0.0, 1.0)
    x = np.where(breast, air + thickness * np.where(depth > 9.0, 1.3 * fat, fat), air).astype(np.float32)
    levels = breast_levels(x, breast, np.zeros_like(breast), mm)
    assert levels[0] == air and levels[1] == pytest.approx(fat, rel=0.1)  # the interior alone: 1.3 x fat
