"""Issue 28, mammography: the pectoral muscle and the skin line carry no marks, density does not depend on the
display LUT, family-B density within one grade, and the shipped network's own false positives on family B.

Phantoms of both families (``training.mammography.phantom`` = A, ``phantom_b`` = B) give the truth. Marking
rules are tested with a network stand-in that fires exactly where a failure class was seen (the pectoral
muscle, its top, the skin line, and one true mass), so a rule that lets a mark through there fails.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from models.mammography.analysis import PECTORAL_MARGIN_MM, SKIN_MARGIN_MM, analyse_exam, analyse_view, markable
from models.mammography.density import birads_density, exam_density
from models.mammography.detection import Calibration, Platt
from models.mammography.orientation import view_orientation
from models.mammography.preprocess import REFERENCE_FAT, breast_levels, normalise, relative_to_breast
from models.mammography.segmentation import segment_breast
from training.mammography.phantom import PHANTOM_WINDOW, PhantomConfig, PhantomView, make_exam, to_working
from training.mammography.phantom_b import make_exam_b

ROOT = Path(__file__).resolve().parents[3]
CALIBRATION = Calibration({"mass": 0.0, "calcification_cluster": 0.0},
                          {"mass": Platt(), "calcification_cluster": Platt()}, tuple(np.linspace(-4, 4, 9)), 12.0)
# (family, seed, laterality) of MLO views whose pectoral muscle is large enough to see (>= 10 000 px at 0.25 mm)
MLO_VIEWS = [("a", 10000, "R"), ("a", 10001, "L"), ("b", 10002, "L"), ("b", 10003, "R"), ("b", 10003, "L")]


def _exam(family: str, seed: int):
    return make_exam(seed) if family == "a" else make_exam_b(seed)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


@pytest.fixture(scope="module")
def mlo_views() -> dict[tuple[str, int, str], tuple[PhantomView, tuple[float, float]]]:
    out = {}
    for family, seed, side in MLO_VIEWS:
        exam = _exam(family, seed)
        out[(family, seed, side)] = (to_working(exam.views[(side, "MLO")]), getattr(exam, "window", PHANTOM_WINDOW))
    return out


@pytest.mark.parametrize("key", MLO_VIEWS, ids=[f"{f}{s}{lat}" for f, s, lat in MLO_VIEWS])
@pytest.mark.parametrize("flip", ["canonical", "stored-flipped"])
def test_pectoral_mask_found_on_both_families(mlo_views, key, flip):
    """The pectoral mask of an MLO view, left or right, as canonical or as stored mirrored (the pipeline's own
    orientation step flips it back from the pixels), overlaps the true muscle (Dice >= 0.8)."""
    pv, _ = mlo_views[key]
    image = pv.image if flip == "canonical" else pv.image[:, ::-1]
    orientation = view_orientation(pv.laterality, "MLO", None, image)
    canonical = np.ascontiguousarray(orientation.to_canonical(image))
    seg = segment_breast(canonical, pv.spacing_mm, "MLO")
    assert _dice(seg.pectoral, pv.pectoral) >= 0.8


def _stand_in(pv: PhantomView, fire_on: np.ndarray):
    """A network stand-in answering a mass logit of 4 on *fire_on*, -8 elsewhere (dense channel: truth)."""

    def predict(x: np.ndarray) -> np.ndarray:
        out = np.full((1, 3, *x.shape[2:]), -8.0, dtype=np.float32)
        h, w = fire_on.shape
        out[0, 0, :h, :w] = np.where(pv.dense, 4.0, -8.0)
        out[0, 1, :h, :w] = np.where(fire_on, 4.0, -8.0)
        return out

    return predict


@pytest.mark.parametrize("key", MLO_VIEWS[:3], ids=[f"{f}{s}{lat}" for f, s, lat in MLO_VIEWS[:3]])
def test_no_mark_on_pectoral_muscle_or_skin_line(mlo_views, key):
    """Blobs on the pectoral muscle, at its top and on the skin line give no mark; a mass in the breast does."""
    pv, window = mlo_views[key]
    mm = pv.spacing_mm
    rows, cols = np.nonzero(pv.pectoral)
    top = (int(rows.min()) + int(3 / mm), int(cols[rows == rows.min()].max()) // 2)  # top of the muscle
    middle = (int(np.median(rows)), int(np.median(cols[rows == int(np.median(rows))])) // 2)
    depth = ndimage.distance_transform_edt(np.pad(pv.breast, ((0, 0), (1, 0)), mode="edge"))[:, 1:] * mm
    skin = np.argwhere((depth > 0.5) & (depth < 1.5) & ~ndimage.binary_dilation(pv.pectoral, iterations=80))[0]
    inside = np.argwhere((depth > 25) & ~ndimage.binary_dilation(pv.pectoral, iterations=int(20 / mm)))
    mass = inside[len(inside) // 2]
    fire = np.zeros_like(pv.breast)
    rr, cc = np.mgrid[0:fire.shape[0], 0:fire.shape[1]]
    for r, c in (top, middle, tuple(skin), tuple(mass)):
        fire |= np.hypot(rr - r, cc - c) < 4 / mm
    a = analyse_view(pv.image, pv.laterality, "MLO", window, _stand_in(pv, fire))
    marked = [c for c in a.candidates if c.kind == "mass" and CALIBRATION.marked(c)]
    assert len(marked) == 1
    assert np.hypot(marked[0].centre_rc[0] - mass[0] - 0.5, marked[0].centre_rc[1] - mass[1] - 0.5) < 2 / mm
    allowed = markable(a.segmentation, mm)
    assert not (allowed & a.segmentation.pectoral).any()
    assert depth[allowed].min() >= SKIN_MARGIN_MM - 1.0  # the segmented skin line lies within 1 mm of the truth
    pectoral_distance = ndimage.distance_transform_edt(~a.segmentation.pectoral) * mm
    assert pectoral_distance[allowed].min() >= PECTORAL_MARGIN_MM


def test_breast_levels_do_not_depend_on_the_display_lut():
    """The same view under two vendor scales and windows maps to the same breast-relative image."""
    pv = to_working(make_exam_b(10003).views[("R", "CC")])
    seg = segment_breast(pv.image, pv.spacing_mm, "CC")
    images = []
    for gain, offset, window in ((1.0, 0.0, (1.3, 2.0)), (2500.0, 300.0, (1200.0, 3000.0))):
        x = normalise(pv.image * gain + offset, *window)
        images.append(relative_to_breast(x, *breast_levels(x, seg.breast, seg.pectoral, pv.spacing_mm)))
    assert np.abs(images[0] - images[1])[seg.breast].max() < 1e-3
    fat = images[0][pv.breast & ~pv.dense & ~pv.pectoral]
    assert abs(float(np.median(fat)) - REFERENCE_FAT) < 0.03


def test_single_sided_family_b_finding_marked_only_on_its_breast():
    """A family-B exam with a finding in the left breast only: with views relabelled (left and right swapped
    together with their pixels, i.e. the images of each breast kept) and mirrored, every mark is left."""
    seed = next(s for s in range(10000, 10040)
                if any(t.kind == "mass" for v in make_exam_b(s, ("L",)).views.values() for t in v.lesions))
    exam = make_exam_b(seed, ("L",))
    views = {}
    for (side, view), native in exam.views.items():
        pv = to_working(native)
        stored = pv.image[:, ::-1]  # as a vendor stores it, chest wall on the other edge
        canonical = np.ascontiguousarray(view_orientation(side, view, None, stored).to_canonical(stored))
        views[(side, view)] = analyse_view(canonical, side, view, exam.window, _stand_in(pv, pv.mass))
    result = analyse_exam(views, CALIBRATION)
    assert result.findings
    assert {f.laterality for f in result.findings} == {"L"}


@pytest.fixture(scope="module")
def shipped():
    from models.mammography.inference import load_calibration, relative_input, runtime_predictor
    from models.runtime import RuntimeSettings, make_runtime

    with make_runtime(RuntimeSettings(model_repository=ROOT / "triton_repo", device="cpu",
                                      intra_op_threads=1)) as runtime:
        version = runtime.resolve_version("mammo_detector")
        yield (runtime_predictor(runtime, "mammo_detector", version), load_calibration(runtime, "mammo_detector",
                                                                                       version),
               relative_input(runtime, "mammo_detector", version))  # each version with its own network input


@pytest.mark.parametrize("seed", [10000, 10003])
def test_family_b_density_within_one_grade(shipped, seed):
    """Family B's density with the shipped network, the breast-relative intensity rule beside it: within one
    grade of the truth (the network's dense channel alone read d as a on seed 10000)."""
    predict, _, relative = shipped
    exam = make_exam_b(seed)
    per_view = {}
    for key, native in exam.views.items():
        pv = to_working(native)
        per_view[key] = analyse_view(pv.image, key[0], key[1], exam.window, predict, relative).percent_dense
    ours = exam_density(per_view).category
    truth = max(birads_density(p) for p in exam.breast_percent_dense.values())
    assert abs("abcd".index(ours) - "abcd".index(truth)) <= 1


@pytest.mark.xfail(strict=True, reason="issue 28: version 2 (trained on families A and B) still marks glandular "
                   "tissue at its operating point: 2 marks on this breast (version 1: 15); over 32 unseen family-B "
                   "exams 24 marks in lesion-free breasts (version 1: 322)")
def test_lesion_free_family_b_breast_gets_no_mark(shipped):
    """A lesion-free family-B breast (both views) gets no mark at the card's operating point."""
    predict, calibration, relative = shipped
    exam = make_exam_b(10006, lesion_sides=())
    marks = 0
    for side in ("R",):
        for view in ("CC", "MLO"):
            pv = to_working(exam.views[(side, view)])
            a = analyse_view(pv.image, side, view, exam.window, predict, relative)
            marks += sum(1 for c in a.candidates if calibration.marked(c))
    assert marks == 0


def test_lesion_free_family_a_exam_mass_marks_within_the_bar(shipped):
    """A lesion-free family-A exam (the training family): mass marks at the card's operating point stay within
    the issue's bar of 0.5 per image (the shipped v1 network makes one on seed 10001, left CC or MLO)."""
    predict, calibration, relative = shipped
    exam = make_exam(10001, PhantomConfig(lesion_sides=()))
    marks = 0
    for (side, view), native in exam.views.items():
        pv = to_working(native)
        a = analyse_view(pv.image, side, view, PHANTOM_WINDOW, predict, relative)
        marks += sum(1 for c in a.candidates if c.kind == "mass" and calibration.marked(c))
    assert marks / len(exam.views) <= 0.5
