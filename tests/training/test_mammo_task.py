"""mammography on the training framework: cases -> the detector's input and targets (canonical orientation,
working spacing, the service's normalisation), the evaluation records, and a few-iteration training from
``dicom-seg`` and from VinDr-Mammo that exports an ONNX the local runtime serves with a calibration the service reads.

Datasets are written in their exact layouts (VinDr-Mammo and CBIS-DDSM CSVs, DICOM written with pydicom by
:func:`factories.make_mg_image`; a SEG written by highdicom and a ``labels.csv`` sidecar for ``dicom-seg``). The
images are small synthetic breasts stored as a modality stores them: a left breast with its chest wall on the left
edge, a right breast with it on the right edge.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes
from scipy import ndimage

from factories import make_mg_image
from models.mammography.density import birads_density, percent_dense_area
from models.mammography.detection import Calibration
from training.mammography.cases import DENSITY_TARGET_PERCENT, CaseSkipped, mammo_view
from training.readers import read_dataset
from training.readers.case import Case, ImageLabels

ROWS, COLS = 192, 144
MASS_RADIUS = 6
HEAD = "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density"


def _pixels(side: str, mass_rc: tuple[int, int] | None, seed: int) -> np.ndarray:
    """A textured half-ellipse breast on a dark background, chest wall on the left edge for a left breast and on
    the right edge for a right breast; *mass_rc* (row, column from the chest wall) a bright disc."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:ROWS, :COLS]
    breast = (rr - ROWS / 2) ** 2 + (cc * 1.3) ** 2 <= (0.45 * ROWS) ** 2
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (ROWS, COLS)), 3)
    image = np.where(breast, 1500 + 300 * texture / texture.std(), 150)
    if mass_rc:
        image[(rr - mass_rc[0]) ** 2 + (cc - mass_rc[1]) ** 2 <= MASS_RADIUS**2] += 700
    return np.clip(image if side == "L" else image[:, ::-1], 0, 4095).astype(np.uint16)


def _stored_col(side: str, col: int) -> int:
    return col if side == "L" else COLS - 1 - col


#: (image id, laterality, view, mass (row, column from the chest wall) or None, density)
VINDR = [("i0", "L", "CC", (90, 40), "A"), ("i1", "R", "CC", (100, 30), "B"), ("i2", "L", "MLO", None, "C"),
         ("i3", "R", "MLO", (80, 50), "D")]


def _write_vindr(root: Path, images: list[tuple[str, str, str, tuple[int, int] | None, str]]) -> Path:
    breast_rows, finding_rows = [], []
    for n, (image_id, side, view, mass, density) in enumerate(images):
        make_mg_image(root / "images" / "s1" / f"{image_id}.dicom", rows=ROWS, cols=COLS, laterality=side, view=view,
                      pixels=_pixels(side, mass, n), imager_pixel_spacing=(0.25, 0.25), magnification=None)
        breast_rows.append(f"s1,x1,{image_id},{side},{view},{ROWS},{COLS},BI-RADS 4,DENSITY {density},training")
        if mass:
            c = _stored_col(side, mass[1])
            finding_rows.append(f"s1,x1,{image_id},{side},{view},{ROWS},{COLS},BI-RADS 4,DENSITY {density},['Mass'],"
                                f"BI-RADS 4,{c - 6},{mass[0] - 6},{c + 7},{mass[0] + 7},training")
        else:
            finding_rows.append(f"s1,x1,{image_id},{side},{view},{ROWS},{COLS},BI-RADS 1,DENSITY {density},"
                                "['No Finding'],,,,,,training")
    (root / "breast-level_annotations.csv").write_text(f"{HEAD},split\n" + "\n".join(breast_rows) + "\n",
                                                       encoding="utf-8")
    (root / "finding_annotations.csv").write_text(
        f"{HEAD},finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n" + "\n".join(finding_rows) + "\n",
        encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def vindr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    more = [(f"j{k}", "LR"[k % 2], ("CC", "MLO")[k // 2 % 2], (70 + 5 * k, 35) if k % 3 else None, "ABCD"[k % 4])
            for k in range(4)]
    return _write_vindr(tmp_path_factory.mktemp("vindr"), VINDR + more)


def _mass_centre(target: np.ndarray) -> np.ndarray:
    return np.argwhere(target[1] > 0).mean(axis=0)  # type: ignore[no-any-return]


def test_views_are_flipped_so_the_chest_wall_is_on_the_left(vindr: Path) -> None:
    cases = {c.case_id: c for c in read_dataset(vindr, "vindr-mammo").cases}
    for image_id, side, view, mass, _ in VINDR:
        v = mammo_view(cases[image_id])
        assert (v.laterality, v.view) == (side, view)
        assert v.orientation.flip_cols == (side == "R") and not v.orientation.flip_rows
        assert v.segmentation.breast[:, 0].mean() > 0.8 and not v.segmentation.breast[:, -1].any()
        assert v.x.shape == (ROWS, COLS)                                        # 0.25 mm: the working spacing
        if mass is None:
            assert not v.target[1].any() and v.boxes == ()
            continue
        # The mass target sits where the mass is, measured from the chest wall, on the canonical image ...
        np.testing.assert_allclose(_mass_centre(v.target), mass, atol=0.6)
        distance = np.hypot(*(np.mgrid[:ROWS, :COLS] - np.array(mass)[:, None, None]))
        assert v.x[distance <= 4].mean() > v.x[(distance >= 9) & (distance <= 12)].mean() + 0.06  # the bright disc
        # ... and mapped back, where the CSV box put it on the stored image (a left breast's target in the left
        # image, on the stored columns of the left breast).
        stored = v.orientation.to_stored(v.target[1])
        np.testing.assert_allclose(np.argwhere(stored > 0).mean(axis=0), (mass[0], _stored_col(side, mass[1])),
                                   atol=0.6)
        (box,) = v.boxes
        assert box.kind == "mass" and box.box[1] <= mass[1] <= box.box[3]


@pytest.mark.parametrize("density", ["a", "b", "c", "d"])
def test_dense_target_gives_the_labelled_category(vindr: Path, density: str) -> None:
    case = read_dataset(vindr, "vindr-mammo").cases[0]
    v = mammo_view(replace(case, image_labels=replace(case.image_labels, density=density)))
    seg = v.segmentation
    percent = percent_dense_area(v.target[0] > 0, seg.breast, seg.pectoral)
    assert abs(percent - DENSITY_TARGET_PERCENT[density]) < 2.0
    assert birads_density(percent) == density and v.weight[0] == 1.0
    unrated = mammo_view(replace(case, image_labels=replace(case.image_labels, density=None)))
    assert unrated.weight[0] == 0.0 and not unrated.target[0].any()


def test_cbis_ddsm_roi_mask_without_spacing(tmp_path: Path) -> None:
    """CBIS-DDSM film scans carry no spacing: the assumed spacing resamples them; the ROI mask is the target."""
    mask = np.zeros((ROWS, COLS), np.uint16)
    rr, cc = np.mgrid[:ROWS, :COLS]
    mask[(rr - 100) ** 2 + (cc - (COLS - 1 - 30)) ** 2 <= MASS_RADIUS**2] = 255
    folder = "Mass-Training_P_00004_RIGHT_CC"
    for sub, uid, pixels in [(folder, "1.2.3.4.1", _pixels("R", (100, 30), 1)), (folder + "_1", "1.2.3.4.2", mask)]:
        make_mg_image(tmp_path / sub / "1.2.3" / uid / "000000.dcm", rows=ROWS, cols=COLS, pixels=pixels,
                      imager_pixel_spacing=None, magnification=None, series_uid=uid, laterality="R")
    (tmp_path / "mass_case_description_train_set.csv").write_text(
        "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
        "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\n"
        f"P_00004,3,RIGHT,CC,1,mass,OVAL,CIRCUMSCRIBED,4,MALIGNANT,4,{folder}/1.2.3/1.2.3.4.1/000000.dcm,"
        f"{folder}_1/1.2.3/1.2.3.4.2/000000.dcm,{folder}_1/1.2.3/1.2.3.4.2/000000.dcm\n", encoding="utf-8")
    (case,) = read_dataset(tmp_path, "cbis-ddsm").cases
    v = mammo_view(case, assumed_spacing_mm=0.125)
    assert v.x.shape == (ROWS // 2, COLS // 2) and v.density == "c" and v.orientation.flip_cols
    np.testing.assert_allclose(_mass_centre(v.target), (50, 15), atol=0.8)


def test_an_upside_down_cc_is_flipped_by_its_patient_orientation(tmp_path: Path) -> None:
    """A left CC stored upside down (Patient Orientation A\\L: the lateral side at the bottom) is flipped in rows too;
    its VinDr box (stored pixels) lands on the mass of the canonical image."""
    mass = (60, 40)
    _write_vindr(tmp_path, [("u0", "L", "CC", mass, "B")])
    path = tmp_path / "images" / "s1" / "u0.dicom"
    ds = dcmread(path)
    ds.PatientOrientation = ["A", "L"]
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
    ds.save_as(path)
    csv = tmp_path / "finding_annotations.csv"
    r0, r1 = ROWS - (mass[0] + 7), ROWS - (mass[0] - 6)
    csv.write_text(csv.read_text().replace(f",{mass[0] - 6},", f",{r0},").replace(f",{mass[0] + 7},", f",{r1},"))
    (case,) = read_dataset(tmp_path, "vindr-mammo").cases
    v = mammo_view(case)
    assert v.orientation.flip_rows and not v.orientation.flip_cols
    np.testing.assert_allclose(_mass_centre(v.target), mass, atol=0.6)


def test_inbreast_outlines_and_calcification_points_become_targets(tmp_path: Path) -> None:
    """INbreast: a mass outline fills the mass channel; single-point calcifications grow into a 1 mm region."""
    import plistlib

    make_mg_image(tmp_path / "AllDICOMs" / "22678622_5530d5782fc89dd7_MG_R_CC_ANON.dcm", rows=ROWS, cols=COLS,
                  laterality="R", view="CC", pixels=_pixels("R", (100, 30), 0), imager_pixel_spacing=(0.25, 0.25),
                  magnification=None)
    centre = (100, COLS - 1 - 30)   # stored (row, column) of the mass of a right breast
    outline = [(centre[1] + 6 * np.cos(t), centre[0] + 6 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 24)[:-1]]

    def roi(name: str, points: list[tuple[float, float]]) -> dict[str, object]:
        return {"Name": name, "NumberOfPoints": len(points), "Point_px": [f"({x}, {y})" for x, y in points]}

    doc = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 3,
                       "ROIs": [roi("Mass", outline), roi("Calcification", [(COLS - 1 - 50.0, 60.0)]),
                                roi("Calcification", [(COLS - 1 - 52.0, 62.0)])]}]}
    (tmp_path / "AllXML").mkdir()
    (tmp_path / "AllXML" / "22678622.xml").write_bytes(plistlib.dumps(doc))
    (tmp_path / "INbreast.csv").write_text("Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;"
                                           "Bi-Rads\nremoved;removed;R;CC;201001;22678622;3;4c\n", encoding="utf-8")
    (case,) = read_dataset(tmp_path, "inbreast").cases
    v = mammo_view(case)
    assert v.density == "c" and v.orientation.flip_cols
    np.testing.assert_allclose(_mass_centre(v.target), (100, 30), atol=0.8)
    calc = v.target[2] > 0
    assert calc[60, 50] and calc[62, 52] and 20 <= calc.sum() <= 60       # two points grown by 4 pixels (1 mm)
    assert {b.kind for b in v.boxes} == {"mass", "calcification_cluster"}


def test_a_case_without_laterality_is_skipped(vindr: Path) -> None:
    case = read_dataset(vindr, "vindr-mammo").cases[0]
    with pytest.raises(CaseSkipped, match="no laterality or view"):
        mammo_view(Case(case.case_id, case.image, image_labels=ImageLabels(view="CC")))


# ------------------------------------------------------------------------------------------ dicom-seg
def _write_dicom_seg(root: Path) -> dict[str, tuple[str, tuple[int, int]]]:
    """One MG series of four images; a SEG ("mass") on three of them; densities in labels.csv."""
    study, series = hd.UID(), hd.UID()
    labelled: dict[str, tuple[str, tuple[int, int]]] = {}
    rows = ["SOPInstanceUID,density"]
    (root / "seg").mkdir()
    written = []
    for n, (side, view, mass, density) in enumerate([("L", "CC", (90, 40), "a"), ("R", "CC", (100, 30), "2"),
                                                     ("R", "MLO", (80, 50), ""), ("L", "MLO", None, "d")]):
        path = make_mg_image(root / "mg" / f"{side}{view}.dcm", rows=ROWS, cols=COLS, laterality=side, view=view,
                             pixels=_pixels(side, mass, n), imager_pixel_spacing=(0.25, 0.25), magnification=None,
                             study_uid=study, series_uid=series)
        ds = dcmread(path)
        written.append(path)
        rows.append(f"{ds.SOPInstanceUID},{density}")
        if mass is None:
            continue
        rr, cc = np.mgrid[:ROWS, :COLS]
        mask = (rr - mass[0]) ** 2 + (cc - _stored_col(side, mass[1])) ** 2 <= MASS_RADIUS**2
        description = hd.seg.SegmentDescription(
            segment_number=1, segment_label="mass", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Mass, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        hd.seg.Segmentation(
            source_images=[ds], pixel_array=mask[np.newaxis].astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
            series_instance_uid=hd.UID(), series_number=300 + n, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="test", manufacturer_model_name="test", software_versions="0", device_serial_number="0",
        ).save_as(root / "seg" / f"{side}{view}.dcm")
        labelled[str(ds.SOPInstanceUID)] = (side, mass)
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _write_density_sr(root / "sr.dcm", written)
    return labelled


def _write_density_sr(path: Path, images: list[Path]) -> None:
    """A TID 1500 SR as this project's mammography report writes it: the right breast's composition (c) and the
    exam's (d, both breasts); the right MLO has no density in labels.csv, so the SR's right breast gives it."""
    from imaging.mammo import load_mammogram
    from imaging.results import Finding, Measurement, QualitativeEvaluation, ResultContext
    from imaging.sr import write_sr
    from models.mammography.sr import (
        BOTH_BREASTS,
        BREAST_COMPOSITION,
        COMPOSITION,
        COMPOSITION_TYPE,
        MAMMOGRAPHY,
        PERCENT,
        PERCENT_FIBROGLANDULAR,
        SCREENING_MAMMOGRAPHY,
        SITE,
    )

    findings = [Finding("density-R", COMPOSITION_TYPE, SITE["R"], (Measurement(PERCENT_FIBROGLANDULAR, 60.0, PERCENT),),
                        (QualitativeEvaluation(BREAST_COMPOSITION, COMPOSITION["c"]),)),
                Finding("exam", MAMMOGRAPHY, BOTH_BREASTS, (), (QualitativeEvaluation(BREAST_COMPOSITION, COMPOSITION["d"]),))]
    context = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="mammography", model_version="1.0.0")
    write_sr([load_mammogram(p) for p in images], findings, context, procedure=SCREENING_MAMMOGRAPHY).save_as(
        path, enforce_file_format=True)


@pytest.fixture(scope="module")
def dicom_seg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, tuple[int, int]]]]:
    root = tmp_path_factory.mktemp("mg-dicom-seg")
    return root, _write_dicom_seg(root)


def test_dicom_seg_mammograms_one_case_per_labelled_image(dicom_seg: tuple[Path, dict[str, tuple[str, tuple[int, int]]]]
                                                          ) -> None:
    root, labelled = dicom_seg
    result = read_dataset(root, "dicom-seg")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == sorted(labelled)
    (skipped,) = result.skipped
    assert skipped.reason == "no SEG frame refers to this image"
    densities = {"L": "a", "R": "b"}
    for uid, (side, mass) in labelled.items():
        case = cases[uid]
        assert case.image_labels.laterality == side and dict(case.label.names) == {1: "mass"}
        v = mammo_view(case)
        np.testing.assert_allclose(_mass_centre(v.target), mass, atol=0.6)
        assert v.density == (densities[side] if v.view == "CC" else "c")
        from_sr = (side, v.view) == ("R", "MLO")
        assert {Path(s.name).name for s in case.sources} >= {f"{side}{v.view}.dcm", "sr.dcm" if from_sr else "labels.csv"}


# ------------------------------------------------------------------------------------------ training
TINY = {"channels": (4, 4, 8, 8, 8), "num_res_units": 0, "patch": 64, "tile": 128, "patches_per_case": 4}


def _tiny_config(path: Path) -> Path:
    """The task's default configuration with a tiny network, 64-pixel patches and 128-pixel tiles."""
    from training.framework.config import load_run_config
    from training.framework.spec import get_task

    task = get_task("mammography")
    config = load_run_config(task.default_config, task.options, task.name)
    config = replace(config.replace_train(val_every=2, batch_size=4, bootstrap=20, threads=1, val_fraction=0.4),
                     options=replace(config.options, **TINY))
    path.write_text(config.to_toml(), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["vindr-mammo", "dicom-seg"])
def test_aiws_train_a_few_iterations_exports_an_onnx_the_runtime_serves(fmt: str, vindr: Path,
                                                                        dicom_seg: tuple[Path, object],
                                                                        tmp_path: Path) -> None:
    from aiws.cli import main
    from models.mammography.network import INPUT_NAME, OUTPUT_NAME
    from models.runtime import RuntimeSettings, make_runtime

    root = vindr if fmt == "vindr-mammo" else dicom_seg[0]
    assert main(["train", "mammography", "--data", str(root), "--format", fmt, "--config",
                 str(_tiny_config(tmp_path / "tiny.toml")), "--max-iterations", "4", "--run", "run",
                 "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    run = tmp_path / "run"
    validation = json.loads((run / "metrics.json").read_text())["validation"]
    assert {"density_agreement", "density_within_one", "mass_sensitivity", "mass_fp_per_image",
            "wrong_breast_marks", "quality"} <= set(validation)
    records = json.loads((run / "evaluation" / "records.json").read_text())
    assert records and all(r["wrong_breast_marks"] == 0 for r in records)
    assert (run / "evaluation" / "density_confusion.png").is_file()
    version = run / "export" / "mammo_detector" / "1"
    card = json.loads((version / "model_card.json").read_text())
    Calibration.from_json(card["operating_point"], "card")          # what the service's pipeline reads
    x = np.random.default_rng(0).normal(0.4, 0.1, size=(2, 1, 1, 128, 128)).astype(np.float32)
    with make_runtime(RuntimeSettings(model_repository=run / "export", device="cpu")) as runtime:
        logits = runtime.infer("mammo_detector", {INPUT_NAME: x}).outputs[OUTPUT_NAME]
    assert logits.shape == (2, 3, 1, 128, 128) and np.isfinite(logits).all()


# ------------------------------------------------------------------------------------------ the shipped model
def _write_phantom_vindr(root: Path, seeds: list[int]) -> Path:
    """Phantom exams written as a modality stores them (:func:`training.mammography.dicom.write_exam`: Patient
    Orientation, VOI window, Imager Pixel Spacing), laid out and labelled as VinDr-Mammo (boxes in stored pixels)."""
    from models.mammography.orientation import stored_patient_orientation, view_orientation
    from training.mammography.dicom import write_exam
    from training.mammography.phantom import PhantomConfig, make_exam

    breast_rows, finding_rows = [], []
    for seed in seeds:
        exam = make_exam(seed, PhantomConfig(spacing_mm=0.25, lesion_rate=0.6))
        for path in write_exam(exam, root / "written" / str(seed)):
            ds = dcmread(path)
            side, view, image_id = str(ds.ImageLaterality), str(ds.ViewPosition), f"{seed}{path.stem}"
            (root / "images" / str(seed)).mkdir(parents=True, exist_ok=True)
            path.rename(root / "images" / str(seed) / f"{image_id}.dicom")
            head = f"{seed},x,{image_id},{side},{view},{ds.Rows},{ds.Columns},BI-RADS 4," \
                   f"DENSITY {exam.breast_category[side].upper()}"
            breast_rows.append(f"{head},test")
            flip = view_orientation(side, view, stored_patient_orientation(side, view)).flip_cols
            for lesion in exam.views[(side, view)].lesions:
                r0, c0, r1, c1 = lesion.box
                c0, c1 = (ds.Columns - c1, ds.Columns - c0) if flip else (c0, c1)
                category = "['Mass']" if lesion.kind == "mass" else "['Suspicious Calcification']"
                finding_rows.append(f'{head},"{category}",BI-RADS 4,{c0},{r0},{c1},{r1},test')
    (root / "breast-level_annotations.csv").write_text(f"{HEAD},split\n" + "\n".join(breast_rows) + "\n",
                                                       encoding="utf-8")
    (root / "finding_annotations.csv").write_text(
        f"{HEAD},finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n" + "\n".join(finding_rows) + "\n",
        encoding="utf-8")
    return root


@pytest.mark.slow
def test_the_shipped_detector_finds_the_phantom_truth_on_these_inputs(tmp_path: Path) -> None:
    """The shipped mammo_detector (ONNX Runtime, as ``aiws evaluate --version N`` runs it) on the inputs this task
    builds from a public layout gets every density and every lesion of two phantom exams (a dense exam with a mass
    in the right breast, a fatty one with a mass and a cluster in the left): the inputs are the service's."""
    from training.framework.run import evaluate_version, load_dataset
    from training.framework.spec import get_task

    root = _write_phantom_vindr(tmp_path / "vindr", [30003, 30004])
    task = get_task("mammography")
    dataset = load_dataset(task, root, "vindr-mammo")
    assert len(dataset.cases) == 8 and not dataset.skipped
    doc = evaluate_version(task, Path(__file__).resolve().parents[2] / "triton_repo", None, dataset,
                           tmp_path / "report", resamples=10)
    value = {k: v["value"] for k, v in doc["validation"].items()}
    assert value["density_agreement"] == 1.0
    assert value["mass_sensitivity"] == 1.0 and value["calc_sensitivity"] == 1.0
    assert value["wrong_breast_marks"] == 0.0
    records = json.loads((tmp_path / "report" / "evaluation" / "records.json").read_text())
    assert {r["density_pred"] for r in records} == {"a", "d"}
