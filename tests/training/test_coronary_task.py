"""coronary_ct on the training framework: cases -> the labeller's samples (the service's candidates and patches,
truth from label maps, SEG segments and SR points), and a few-iteration training from orCaScore and from
``dicom-seg`` that exports an ONNX the local runtime serves.

Datasets are written in their exact layouts: orCaScore MetaImage files by SimpleITK (ITK's own writer),
``dicom-seg`` as a DICOM CT series, a SEG written by highdicom and a TID 1500 SR written by the project's SR writer;
the images are calcium-score phantoms (:mod:`training.coronary_ct.phantom`), whose voxel truth says what every
candidate is.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk
from pydicom import dcmread
from pydicom.sr.codedict import codes

from imaging.results import Finding, Graphic3D, ImageRegion3D, ResultContext
from imaging.sr import write_sr
from imaging.volume import load_volume
from models.coronary_ct.calcium import Vessel, find_lesions
from models.coronary_ct.outputs import CALCIFIED_PLAQUE, SITES
from models.coronary_ct.patches import lesion_patches
from models.coronary_ct.volume_io import canonical_hu, scan_geometry
from training.coronary_ct.cases import UNUSABLE, CaseSkipped, coronary_case, vessel_of_segment
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import CalciumPhantom, Truth, lesion_truth, make_phantom
from training.readers import read_dataset
from training.readers.case import Case

#: Phantom truth -> class the orCaScore reference gives (left main calcium is labelled LAD there).
ORCA_CLASS = {Truth.LM: 2, Truth.LAD: 2, Truth.LCX: 3, Truth.RCA: 4}
ORCA_VALUE = {Truth.LM: 1, Truth.LAD: 1, Truth.LCX: 2, Truth.RCA: 3}
CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="coronary_ct", model_version="1.0.0")


def _candidate_truth(phantom: CalciumPhantom) -> list[Truth]:
    return lesion_truth(phantom, find_lesions(phantom.hu, phantom.geometry))


def _write_orcascore(root: Path, phantom: CalciumPhantom, patient: int) -> None:
    """``Training Set/Images/TRV1P<n>CTI.mhd`` and ``Reference standard/TRV1P<n>R.mhd``: the reference labels the
    calcified voxels (>= 130 HU) of each artery, 1 LAD (with LM), 2 LCX, 3 RCA."""
    label = np.zeros(phantom.hu.shape, np.int16)
    for truth, value in ORCA_VALUE.items():
        label[(phantom.labels == int(truth)) & (phantom.hu >= 130)] = value
    for array, path in [(phantom.hu, root / "Training Set" / "Images" / f"TRV1P{patient}CTI.mhd"),
                        (label, root / "Training Set" / "Reference standard" / f"TRV1P{patient}R.mhd")]:
        image = sitk.GetImageFromArray(array.astype(np.int16))
        image.SetSpacing((phantom.pixel_spacing_mm, phantom.pixel_spacing_mm, phantom.increment_mm))
        image.SetOrigin(phantom.origin_mm)
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))


def _seg(paths: list[Path], masks: list[np.ndarray], names: list[str],
         regions: list[Vessel | None] | None = None) -> hd.seg.Segmentation:
    """A SEG of *masks*; *regions*: the coronary artery of each segment as its Anatomic Region (SNOMED CT)."""
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=hd.sr.CodedConcept("237897009", "SCT", "Vascular calcification"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        anatomic_regions=[SITES[r].concept()] if r else None)
        for n, (name, r) in enumerate(zip(names, regions or [None] * len(names)), start=1)]
    stack = np.stack(masks, axis=-1).astype(np.uint8)
    return hd.seg.Segmentation(
        source_images=[dcmread(p) for p in paths], pixel_array=stack,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="0", device_serial_number="0")


def _point(phantom: CalciumPhantom, kind: str) -> tuple[float, float, float]:
    """(k, r, c) voxel index of the first calcification of *kind*."""
    c = next(c for c in phantom.calcifications if c.kind == kind)
    x, y, z = c.centre_mm
    ox, oy, oz = phantom.origin_mm
    return (z - oz) / phantom.increment_mm, (y - oy) / phantom.pixel_spacing_mm, (x - ox) / phantom.pixel_spacing_mm


def _ellipsoid(k: float, r: float, c: float) -> ImageRegion3D:
    return ImageRegion3D(Graphic3D.ELLIPSOID, ((k - 0.5, r, c), (k + 0.5, r, c), (k, r - 2, c), (k, r + 2, c),
                                               (k, r, c - 2), (k, r, c + 2)))


def _write_dicom_seg(root: Path, phantom: CalciumPhantom, sr_points: dict[Vessel, tuple[float, float, float]],
                     coded: bool = False) -> str:
    """A CT series; a SEG with "LAD calcium", "RCA calcium" and "Aortic valve calcification" (all calcified
    valve, annulus and aortic-wall voxels) or, *coded*, segments "Segment_1" and "Segment_2" whose Anatomic Region
    names the artery (3D Slicer's default labels); an SR with one calcified lesion per vessel of *sr_points*."""
    folder = root / f"study{phantom.seed}"
    paths = write_series(phantom, folder / "ct")
    calcified = phantom.hu >= 130
    masks = [calcified & (phantom.labels == int(Truth.LAD)), calcified & (phantom.labels == int(Truth.RCA)),
             calcified & (phantom.labels == int(Truth.EXTRA_CORONARY))]
    seg = _seg(paths, masks, ["Segment_1", "Segment_2", "Aortic valve calcification"],
               [Vessel.LAD, Vessel.RCA, None]) if coded else \
        _seg(paths, masks, ["LAD calcium", "RCA calcium", "Aortic valve calcification"])
    seg.save_as(folder / "seg.dcm")
    if sr_points:
        volume = load_volume(paths)
        findings = [Finding(f"calcium-{v.value}", CALCIFIED_PLAQUE, finding_site=SITES[v], region3d=_ellipsoid(*p))
                    for v, p in sr_points.items()]
        write_sr(volume, findings, CONTEXT).save_as(folder / "sr.dcm", enforce_file_format=True)
    return str(dcmread(paths[0]).SeriesInstanceUID)


@pytest.fixture(scope="module")
def orcascore(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CalciumPhantom]]:
    root = tmp_path_factory.mktemp("orcascore")
    phantoms = {"TRV1P1": make_phantom(3), "TRV1P2": make_phantom(4)}
    for n, phantom in enumerate(phantoms.values(), start=1):
        _write_orcascore(root, phantom, n)
    return root, phantoms


@pytest.fixture(scope="module")
def dicom_seg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CalciumPhantom]]:
    root = tmp_path_factory.mktemp("dicom-seg")
    first, second = make_phantom(0), make_phantom(3)
    uids = {_write_dicom_seg(root, first, {Vessel.LM: _point(first, "LM"), Vessel.LCX: _point(first, "LCx")}):
            first, _write_dicom_seg(root, second, {}, coded=True): second}
    return root, uids


@pytest.mark.parametrize(("label", "expected"), [
    ("LAD calcium", Vessel.LAD.index), ("Left main", Vessel.LM.index), ("LCx", Vessel.LCX.index),
    ("circumflex artery calcification", Vessel.LCX.index), ("RCA", Vessel.RCA.index),
    ("Right coronary artery", Vessel.RCA.index), ("Aortic valve calcification", Vessel.NONE.index),
    ("mitral annulus", Vessel.NONE.index), ("bone", Vessel.NONE.index),
    ("undetermined coronary artery", UNUSABLE), ("Nodule", UNUSABLE)])
def test_segment_labels_name_the_vessel(label: str, expected: int) -> None:
    assert vessel_of_segment(label) == expected


def test_orcascore_candidates_get_the_reference_vessel(orcascore: tuple[Path, dict[str, CalciumPhantom]]) -> None:
    root, phantoms = orcascore
    result = read_dataset(root, "orcascore")
    assert sorted(c.case_id for c in result.cases) == sorted(phantoms)
    for case in result.cases:
        phantom = phantoms[case.case_id]
        prepared = coronary_case(case)
        truth = _candidate_truth(phantom)
        assert len(prepared.lesions) == len(truth) > 0
        expected = np.array([ORCA_CLASS.get(t, Vessel.NONE.index) for t in truth])
        np.testing.assert_array_equal(prepared.truth, expected)
        extra = [i for i, t in enumerate(truth) if t is Truth.EXTRA_CORONARY]
        assert extra and all(prepared.truth[i] == Vessel.NONE.index for i in extra)   # valve, annulus, aortic wall
        assert prepared.matched == prepared.labelled == len(case.calcium) > 0
        # The network input is the service's: same candidates, same patches of the canonical HU volume.
        hu, _ = canonical_hu(case.image)
        np.testing.assert_array_equal(prepared.patches, lesion_patches(hu, scan_geometry(case.image),
                                                                       prepared.lesions).astype(np.float16))


def _flipped(case: Case) -> Case:
    """The same case stored feet-first with mirrored rows (the service flips it back)."""
    shape = np.array(case.image.shape)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = shape[:2] - 1
    image = case.image.with_voxels(case.image.voxels[::-1, ::-1].copy(), case.image.affine @ flip)
    label = replace(case.label, voxels=case.label.voxels[::-1, ::-1].copy())
    return Case(case.case_id, image, label, calcium=case.calcium)


def test_a_flipped_stack_gives_the_same_samples(orcascore: tuple[Path, dict[str, CalciumPhantom]]) -> None:
    case = read_dataset(orcascore[0], "orcascore").cases[0]
    plain, flipped = coronary_case(case), coronary_case(_flipped(case))
    np.testing.assert_array_equal(plain.truth, flipped.truth)
    np.testing.assert_array_equal(plain.patches, flipped.patches)
    # Points alone (no label map) land on the same plaques through the flips.
    points_only = coronary_case(Case(case.case_id, _flipped(case).image, calcium=case.calcium))
    coronary = plain.truth > 0
    np.testing.assert_array_equal(points_only.truth[coronary], plain.truth[coronary])


def test_dicom_seg_segments_and_sr_points_label_candidates(dicom_seg: tuple[Path, dict[str, CalciumPhantom]]) -> None:
    root, phantoms = dicom_seg
    result = read_dataset(root, "dicom-seg")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == sorted(phantoms)
    for uid, phantom in phantoms.items():
        # Segment labels or, for 3D Slicer's "Segment_N", the artery coded as the segment's Anatomic Region.
        assert set(cases[uid].label.names.values()) == {"LAD calcium", "RCA calcium", "Aortic valve calcification"}
        prepared = coronary_case(cases[uid])
        truth = _candidate_truth(phantom)
        by_seg = {Truth.LAD: Vessel.LAD.index, Truth.RCA: Vessel.RCA.index, Truth.EXTRA_CORONARY: Vessel.NONE.index}
        for t, got in zip(truth, prepared.truth):
            if t in by_seg:
                assert got == by_seg[t]
            elif t in (Truth.NONE, Truth.BONE):
                assert got == Vessel.NONE.index
        if cases[uid].calcium:  # the SR's LM and LCx lesions: each point's plaque takes its vessel
            assert {c.vessel for c in cases[uid].calcium} == {"LM", "LCX"}
            for kind, vessel in (("LM", Vessel.LM), ("LCx", Vessel.LCX)):
                k, r, c = (int(round(v)) for v in _point(phantom, kind))
                hit = [i for i, les in enumerate(prepared.lesions) if les.slice_index == k and
                       np.any(np.all(les.pixels == (r, c), axis=1))]
                assert hit and all(prepared.truth[i] == vessel.index for i in hit)
            assert prepared.matched == prepared.labelled == 2


def test_labels_that_match_no_candidate_skip_the_case(orcascore: tuple[Path, dict[str, CalciumPhantom]]) -> None:
    case = read_dataset(orcascore[0], "orcascore").cases[0]
    soft_tissue = case.image.index_to_lps(np.array([[2.0, 128.0, 128.0]]))[0]
    lonely = Case(case.case_id, case.image, calcium=(replace(case.calcium[0], centre_lps_mm=tuple(soft_tissue)),))  # type: ignore[arg-type]
    with pytest.raises(CaseSkipped, match="none matches a calcium candidate"):
        coronary_case(lonely)
    with pytest.raises(CaseSkipped, match="no coronary calcium label"):
        coronary_case(Case(case.case_id, case.image))


# ------------------------------------------------------------------------------------------ training
TINY_OPTIONS = {"channels": (4, 8), "not_coronary_per_case": 8}


def _tiny_config(path: Path) -> Path:
    """The task's default configuration with a tiny network, small batches and few bootstrap resamples."""
    from training.framework.config import load_run_config
    from training.framework.spec import get_task

    task = get_task("coronary_ct")
    config = load_run_config(task.default_config, task.options, task.name)
    config = replace(config.replace_train(val_every=2, batch_size=8, bootstrap=20, threads=1),
                     options=replace(config.options, **TINY_OPTIONS))
    path.write_text(config.to_toml(), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["orcascore", "dicom-seg"])
def test_aiws_train_a_few_iterations_exports_an_onnx_the_runtime_serves(
        fmt: str, orcascore: tuple[Path, dict[str, CalciumPhantom]], dicom_seg: tuple[Path, dict[str, CalciumPhantom]],
        tmp_path: Path) -> None:
    from aiws.cli import main
    from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
    from models.coronary_ct.patches import PATCH_SHAPE
    from models.runtime import RuntimeSettings, make_runtime

    root = orcascore[0] if fmt == "orcascore" else dicom_seg[0]
    assert main(["train", "coronary_ct", "--data", str(root), "--format", fmt, "--config",
                 str(_tiny_config(tmp_path / "tiny.toml")), "--max-iterations", "4", "--run", "run",
                 "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    run = tmp_path / "run"
    for name in ("config.toml", "metrics.json", "skipped.json", "evaluation/records.json"):
        assert (run / name).is_file(), name
    validation = json.loads((run / "metrics.json").read_text())["validation"]
    assert {"balanced_accuracy", "agatston_mae", "lesion_recall", "cac_drs_agreement",
            "not_coronary_counted_per_case"} <= set(validation)
    (record,) = json.loads((run / "evaluation" / "records.json").read_text())
    assert record["not_coronary"] > 0 and record["candidates"] >= record["not_coronary"]
    assert (run / "evaluation" / "agatston_bland_altman.png").is_file()
    x = np.random.default_rng(0).normal(size=(3, *PATCH_SHAPE)).astype(np.float32)
    with make_runtime(RuntimeSettings(model_repository=run / "export", device="cpu")) as runtime:
        logits = runtime.infer(MODEL_NAME, {INPUT_NAME: x}).outputs[OUTPUT_NAME]
    assert logits.shape == (3, 5) and np.isfinite(logits).all()
    if fmt == "orcascore":  # published, then validated on the (other layout's) cases as a hospital would
        repo = tmp_path / "repo"
        assert main(["export", str(run), "--repository", str(repo)]) == 0
        assert main(["evaluate", "--version", "1", "--task", "coronary_ct", "--data", str(dicom_seg[0]), "--format",
                     "dicom-seg", "--repository", str(repo), "--out", str(tmp_path / "report")]) == 0
        report = json.loads((tmp_path / "report" / "metrics.json").read_text())
        assert report["version"] == 1 and report["dataset"]["cases"] == 2
        assert set(report["validation"]) == set(validation)


def test_the_shipped_labeller_agrees_with_the_truth_on_these_samples(orcascore: tuple[Path, dict[str, CalciumPhantom]],
                                                                     tmp_path: Path) -> None:
    """The shipped coronary_calcium_labeller (ONNX Runtime, as ``aiws evaluate --version N`` runs it) on the samples
    this task builds from orCaScore labels every candidate of the two phantoms as their truth: the samples are the
    service's input, patch for patch."""
    from training.framework.run import evaluate_version, load_dataset
    from training.framework.spec import get_task

    task = get_task("coronary_ct")
    dataset = load_dataset(task, orcascore[0], "orcascore")
    doc = evaluate_version(task, Path(__file__).resolve().parents[2] / "triton_repo", None, dataset,
                           tmp_path / "report", resamples=10)
    value = {k: v["value"] for k, v in doc["validation"].items()}
    assert value["balanced_accuracy"] == value["lesion_recall"] == value["cac_drs_n_agreement"] == 1.0
    assert value["not_coronary_counted_per_case"] == 0.0 and value["agatston_mae"] == 0.0
    assert (tmp_path / "report" / "evaluation" / "cac_drs_confusion.png").is_file()
