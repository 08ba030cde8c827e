"""Confounders of coronary calcium scoring (issue 28): the second phantom family (training.coronary_ct.phantom_b),
the candidate filter on lesions beside the aortic root and the mitral annulus, the labeller's plaque vote, the
"not scored" list of rejected calcium (bone, valve, annulus) in the findings and in the SR."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from models.coronary_ct.calcium import CORONARIES, VESSEL_ORDER, Lesion, ScanGeometry, Vessel, find_lesions
from models.coronary_ct.findings import RejectedKind
from models.coronary_ct.labelling import label_lesions, rejected_structures, skeletal_structures, vote_by_plaque
from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.coronary_ct.pipeline import CoronaryCalciumPipeline
from models.pipeline import PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from peers import dciodvfy_errors, have_tool
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import Truth, lesion_truth
from training.coronary_ct.phantom_b import kind_of_lesion, make_phantom_b, variant_for

REPO = Path(__file__).resolve().parents[3] / "triton_repo"
GEOMETRY = ScanGeometry((0.5, 0.5), 3.0)


@pytest.fixture(scope="module")
def phantom_b1():  # type: ignore[no-untyped-def]
    return make_phantom_b(1)  # left dominant, 4 mm left main, ramus intermedius


def test_phantom_b_is_deterministic_and_covers_the_variants() -> None:
    a, b = make_phantom_b(4), make_phantom_b(4)
    assert np.array_equal(a.hu, b.hu) and a.calcifications == b.calcifications
    assert not np.array_equal(make_phantom_b(5).hu[:5], a.hu[:5])
    variants = [variant_for(s) for s in range(6)]
    assert {v.dominance for v in variants} == {"left", "right"}
    assert {0.0, 4.0} <= {v.left_main_mm for v in variants} and any(v.left_main_mm > 8 for v in variants)
    assert any(v.ramus for v in variants)
    assert {c.kind for c in a.calcifications} >= {"valve", "root", "mitral", "aortic", "cartilage", "LAD", "LCx"}


def test_absent_left_main_has_no_lm_calcium() -> None:
    phantom = make_phantom_b(0)
    assert variant_for(0).left_main_mm == 0.0
    assert not any(c.kind == "LM" for c in phantom.calcifications)
    assert not (phantom.labels == Truth.LM).any()


def test_candidates_include_lm_beside_the_root_and_lcx_beside_the_annulus(phantom_b1) -> None:  # type: ignore[no-untyped-def]
    """The candidate filter (130 HU, 1 mm²) keeps every coronary calcification of the confounder phantom as
    its own candidate: the losses seen on independent phantoms are not at this stage."""
    lesions = find_lesions(phantom_b1.hu, phantom_b1.geometry)
    truth = lesion_truth(phantom_b1, lesions)
    kinds = {kind_of_lesion(phantom_b1, les.slice_index, les.centroid_rc) for les, t in zip(lesions, truth)
             if t.vessel is not Vessel.NONE}
    assert kinds >= {"LM", "LAD", "LCx", "RCA"}
    coronary = [c for c in phantom_b1.calcifications if c.kind in ("LM", "LAD", "LCx", "RCA")]
    found = {kind_of_lesion(phantom_b1, les.slice_index, les.centroid_rc) for les in lesions}
    assert {c.kind for c in coronary} <= found
    assert {"valve", "mitral"} <= found  # the confounders are candidates too: the labeller must reject them


def _lesion(k: int, rows: slice, cols: slice) -> Lesion:
    rr, cc = np.mgrid[rows, cols]
    pixels = np.stack([rr.ravel(), cc.ravel()], axis=1)
    return Lesion(k, pixels, pixels.shape[0] * GEOMETRY.pixel_area_mm2, 400.0, 300.0)


def _logits(*vessels: Vessel, confidence: float = 6.0) -> np.ndarray:
    out = np.zeros((len(vessels), len(VESSEL_ORDER)))
    for i, v in enumerate(vessels):
        out[i, v.index] = confidence
    return out


def test_lm_lesion_touching_root_calcium_is_not_outvoted() -> None:
    """A small LM lesion whose pixels touch a large aortic-root calcification on the next slice forms one 3D
    plaque with it; the pooled vote (area-weighted) says "not coronary", but the LM lesion stays LM."""
    root = _lesion(4, slice(10, 22), slice(10, 22))  # 36 mm², not coronary
    lm = _lesion(5, slice(21, 24), slice(21, 25))  # 3 mm², touches the root's corner
    labels = vote_by_plaque([root, lm], _logits(Vessel.NONE, Vessel.LM), (8, 40, 40))
    assert labels == [Vessel.NONE, Vessel.LM]


def test_the_unsure_end_slice_of_annulus_calcium_goes_with_its_plaque() -> None:
    """The thin end slice of a mitral-annulus calcification whose own patch leans coronary (p 0.77-0.84 on family B)
    while its large slice is surely not coronary is not counted; a sure one (p 0.96-1.00: a left main lesion touching
    the root) still is."""
    annulus = _lesion(4, slice(10, 18), slice(10, 18))  # 16 mm², not coronary
    sliver = _lesion(5, slice(17, 19), slice(17, 19))  # 1 mm², touches its corner
    unsure = np.log(0.8 / 0.05)  # softmax against four zero logits: p 0.80
    logits = np.vstack([_logits(Vessel.NONE), _logits(Vessel.RCA, confidence=unsure)])
    assert vote_by_plaque([annulus, sliver], logits, (8, 30, 30)) == [Vessel.NONE, Vessel.NONE]
    sure = np.vstack([_logits(Vessel.NONE), _logits(Vessel.RCA, confidence=np.log(0.96 / 0.01))])  # p 0.96
    assert vote_by_plaque([annulus, sliver], sure, (8, 30, 30)) == [Vessel.NONE, Vessel.RCA]


def test_plaque_vote_still_corrects_an_ambiguous_slice() -> None:
    """Pooling keeps its job: a slice whose own patch says LCx inside an LAD plaque takes the plaque's vessel,
    and a slice called not coronary inside a coronary plaque is counted with it."""
    a, b, c = _lesion(3, slice(5, 10), slice(5, 10)), _lesion(4, slice(6, 9), slice(6, 9)), _lesion(5, slice(5, 9), slice(5, 9))
    logits = np.vstack([_logits(Vessel.LAD), _logits(Vessel.LCX, confidence=1.0), _logits(Vessel.NONE, confidence=0.5)])
    assert vote_by_plaque([a, b, c], logits, (8, 20, 20)) == [Vessel.LAD, Vessel.LAD, Vessel.LAD]


def test_skeletal_structures_long_in_z_or_cut_by_the_field_of_view() -> None:
    """A bone sliver at the image edge on many slices was counted as RCA on an independent phantom: a structure
    spanning >= 30 mm in z, or touching the edge of the field of view, is not coronary whatever the labeller says;
    a 3-slice coronary plaque in the middle of the image is kept."""
    column = [_lesion(k, slice(30, 33), slice(30, 33)) for k in range(10)]  # 10 slices x 3 mm = 30 mm
    edge = [_lesion(4, slice(61, 64), slice(20, 23))]  # touches the last row
    plaque = [_lesion(k, slice(10, 13), slice(40, 43)) for k in (2, 3, 4)]  # 9 mm
    short = [_lesion(k, slice(50, 53), slice(50, 53)) for k in range(9)]  # 27 mm: kept
    skeletal = skeletal_structures(column + edge + plaque + short, GEOMETRY, (12, 64, 64))
    assert skeletal.tolist() == [True] * 10 + [True] + [False] * 3 + [False] * 9


def test_rejected_structures_separates_bone_from_valve_calcium() -> None:
    rib = [_lesion(k, slice(0, 8), slice(0, 60)) for k in range(3)]  # 30 mm long, 3 slices
    valve = [_lesion(2, slice(30, 34), slice(30, 35))]
    lad = [_lesion(2, slice(45, 48), slice(45, 48))]
    lesions = rib + valve + lad
    labels = [Vessel.NONE] * 4 + [Vessel.LAD]
    rejected = rejected_structures(lesions, labels, GEOMETRY, (6, 64, 64))
    assert [r.kind for r in rejected] == [RejectedKind.BONE, RejectedKind.NON_CORONARY]
    assert rejected[0].lesion_count == 3 and rejected[0].volume_mm3 == pytest.approx(3 * 8 * 60 * 0.25 * 3.0)
    assert rejected[1].slice_index == 2 and rejected[1].centre_rc == pytest.approx((31.5, 32.0))
    assert "labeller" in rejected[1].reason


@pytest.mark.skipif(not have_tool("dciodvfy"), reason="dicom3tools not installed")
def test_family_b_study_lists_valve_annulus_and_bone_as_not_scored(phantom_b1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pipeline = CoronaryCalciumPipeline(make_runtime(RuntimeSettings(model_repository=REPO, device="cpu")))
    files = write_series(phantom_b1, tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    result = pipeline.run(PipelineRequest(study_uid, {"s": tuple(files)}, out, "2.25"))
    not_scored = result.summary["not_scored"]
    assert not_scored["bone"] >= 5 and not_scored["non-coronary calcification"] >= 3
    sr_file = next(f.path for f in result.files if f.kind == "sr")
    assert dciodvfy_errors(sr_file) == []
    meanings = {item.ConceptCodeSequence[0].CodeMeaning for item in _walk(dcmread(sr_file).ContentSequence)
                if "ConceptCodeSequence" in item}
    assert {"Not scored: bone", "Not scored: non-coronary calcification"} <= meanings


@pytest.mark.xfail(strict=True, reason="issue 28: labeller v2 (trained on families A and B) labels 3 of this phantom's "
                   "4 circumflex lesions LCx and the fourth, on the posterior descending branch of this left-dominant "
                   "heart, RCA; on 30 unseen family-B phantoms its recall is LM 92 / LAD 94 / LCx 84 / RCA 88 %, below "
                   "the 95 % bar (v1, family A only: LM 0 / LAD 64 / LCx 23 / RCA 54 %): the posterior descending "
                   "branch is labelled at chance (66 of 125 lesions right on seeds 10000-10059, branch_table)")
def test_family_b_per_vessel_recall_meets_the_bar(phantom_b1) -> None:  # type: ignore[no-untyped-def]
    runtime = make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))
    version = runtime.resolve_version(MODEL_NAME, None)

    def predict(x: np.ndarray) -> np.ndarray:
        return runtime.infer(MODEL_NAME, {INPUT_NAME: x}, version=version).outputs[OUTPUT_NAME]

    lesions = find_lesions(phantom_b1.hu, phantom_b1.geometry)
    truth = lesion_truth(phantom_b1, lesions)
    labels = label_lesions(phantom_b1.hu, phantom_b1.geometry, lesions, predict)
    for vessel in CORONARIES:
        pairs = [(t, lab) for t, lab in zip(truth, labels) if t.vessel is vessel]
        assert pairs and sum(lab is vessel for _, lab in pairs) / len(pairs) >= 0.95, vessel.value


def _walk(items):  # type: ignore[no-untyped-def]
    for item in items:
        yield item
        if "ContentSequence" in item:
            yield from _walk(item.ContentSequence)
