"""Mammography readers (cbis-ddsm, vindr-mammo, inbreast) on DICOM files written with pydicom and CSV/XML in the
published layouts."""
from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np
from pydicom import dcmread

from factories import make_mg_image
from training.readers import read_dataset

ROWS, COLS = 60, 40


# ------------------------------------------------------------------------------------------------ cbis-ddsm
def _cbis_files(root: Path, folder: str, study: str, series: str, *, tcia_names: bool,
                pixels: np.ndarray | None = None) -> str:
    """Write one DICOM of *series*; return the path as the CSV names it."""
    csv_path = f"{folder}/{study}/{series}/000000.dcm"
    path = (root / "CBIS-DDSM" / folder / "07-20-2016-DDSM-74994" / f"1.000000-images-{series[-5:]}" / "1-1.dcm"
            if tcia_names else root / csv_path)
    make_mg_image(path, rows=ROWS, cols=COLS, pixels=pixels, imager_pixel_spacing=None, magnification=None,
                  series_uid=series)
    return csv_path


def test_cbis_ddsm_masks_density_assessment_with_published_and_tcia_paths(tmp_path: Path) -> None:
    mask = np.zeros((ROWS, COLS), np.uint16)
    mask[10:20, 5:15] = 255
    rows = []
    for n, (folder, tcia) in enumerate([("Mass-Training_P_00001_LEFT_CC", False),
                                        ("Mass-Training_P_00004_RIGHT_MLO", True)]):
        image = _cbis_files(tmp_path, folder, f"1.3.6.1.4.1.9590.100.1.2.1{n}", f"1.3.6.1.4.1.9590.100.1.2.2{n}",
                            tcia_names=tcia)
        roi = _cbis_files(tmp_path, folder + "_1", f"1.3.6.1.4.1.9590.100.1.2.3{n}", f"1.3.6.1.4.1.9590.100.1.2.4{n}",
                          tcia_names=tcia, pixels=mask)
        # The cropped image: same folder, another series, another size.
        crop = f"{folder}_1/1.3.6.1.4.1.9590.100.1.2.3{n}/1.3.6.1.4.1.9590.100.1.2.5{n}/000001.dcm"
        make_mg_image(tmp_path / crop, rows=10, cols=10, series_uid=f"1.3.6.1.4.1.9590.100.1.2.5{n}")
        side, view = folder.split("_")[-2:]
        rows.append(f"P_0000{n},{3 if n == 0 else 2},{side},{view},1,mass,OVAL,CIRCUMSCRIBED,{4 if n == 0 else 3},"
                    f"MALIGNANT,4,{image},{crop},{roi}")
    # A mass whose ROI mask is empty.
    image = _cbis_files(tmp_path, "Mass-Training_P_00009_LEFT_CC", "1.3.6.1.4.1.9590.100.1.2.19", "1.3.6.1.4.1.9590.100.1.2.29",
                        tcia_names=False)
    roi = _cbis_files(tmp_path, "Mass-Training_P_00009_LEFT_CC_1", "1.3.6.1.4.1.9590.100.1.2.39",
                      "1.3.6.1.4.1.9590.100.1.2.49", tcia_names=False, pixels=np.zeros((ROWS, COLS), np.uint16))
    rows.append(f"P_00009,1,LEFT,CC,1,mass,OVAL,CIRCUMSCRIBED,2,BENIGN,3,{image},{roi},{roi}")
    (tmp_path / "mass_case_description_train_set.csv").write_text(
        "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
        "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\n"
        + "\n".join(rows) + "\n", encoding="utf-8")

    result = read_dataset(tmp_path, "cbis-ddsm")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["Mass-Training_P_00001_LEFT_CC", "Mass-Training_P_00004_RIGHT_MLO"]
    left, right = cases["Mass-Training_P_00001_LEFT_CC"], cases["Mass-Training_P_00004_RIGHT_MLO"]
    assert (left.image_labels.density, left.image_labels.assessment, left.image_labels.laterality,
            left.image_labels.view) == ("c", "4", "L", "CC")
    assert (right.image_labels.density, right.image_labels.laterality, right.image_labels.view) == ("b", "R", "MLO")
    assert right.image.shape == (1, ROWS, COLS)
    assert int((right.label.voxels == 1).sum()) == 100 and dict(right.label.names)[1] == "mass"
    assert dict(right.image_labels.extra)["pixel_spacing"] == "unknown"
    assert any("07-20-2016-DDSM-74994" in s.name for s in right.sources)
    ((skipped_id, reason),) = [(s.case_id, s.reason) for s in result.skipped]
    assert skipped_id == "Mass-Training_P_00009_LEFT_CC" and "ROI mask is empty" in reason


# ------------------------------------------------------------------------------------------------ vindr-mammo
def test_vindr_mammo_breast_labels_and_boxes(tmp_path: Path) -> None:
    for study, image, size in [("s1", "i1", (ROWS, COLS)), ("s1", "i2", (ROWS, COLS)), ("s2", "i3", (ROWS, COLS)),
                               ("s2", "i4", (ROWS + 1, COLS))]:
        make_mg_image(tmp_path / "images" / study / f"{image}.dicom", rows=size[0], cols=size[1])
    head = "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density"
    (tmp_path / "breast-level_annotations.csv").write_text(
        f"{head},split\n"
        f"s1,x1,i1,L,CC,{ROWS},{COLS},BI-RADS 4,DENSITY C,training\n"
        f"s1,x1,i2,R,MLO,{ROWS},{COLS},BI-RADS 1,DENSITY B,training\n"
        f"s2,x2,i3,L,MLO,{ROWS},{COLS},BI-RADS 2,DENSITY A,test\n"
        f"s2,x2,i4,R,CC,{ROWS},{COLS},BI-RADS 1,DENSITY D,test\n", encoding="utf-8")
    (tmp_path / "finding_annotations.csv").write_text(
        f"{head},finding_categories,finding_birads,xmin,ymin,xmax,ymax,split\n"
        f"s1,x1,i1,L,CC,{ROWS},{COLS},BI-RADS 4,DENSITY C,\"['Mass', 'Suspicious Calcification']\",BI-RADS 4,"
        "5.5,10.0,20.25,30.0,training\n"
        f"s1,x1,i2,R,MLO,{ROWS},{COLS},BI-RADS 1,DENSITY B,['No Finding'],,,,,,training\n"
        f"s2,x2,i3,L,MLO,{ROWS},{COLS},BI-RADS 2,DENSITY A,['Mass'],BI-RADS 2,10,10,50,70,test\n", encoding="utf-8")
    result = read_dataset(tmp_path, "vindr-mammo")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["i1", "i2"]
    i1 = cases["i1"]
    assert (i1.image_labels.density, i1.image_labels.assessment, i1.image_labels.laterality, i1.image_labels.view) == \
        ("c", "4", "L", "CC")
    (box,) = i1.boxes
    assert (box.row0, box.col0, box.row1, box.col1) == (10.0, 5.5, 30.0, 20.25)    # x is the column
    assert box.category == "Mass; Suspicious Calcification" and box.assessment == "4"
    assert cases["i2"].boxes == ()
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "outside the 60x40 image" in reasons["i3"]
    assert "the CSV says 60x40" in reasons["i4"]


# ------------------------------------------------------------------------------------------------ inbreast
def _roi(name: str, points: list[tuple[float, float]]) -> dict:  # type: ignore[type-arg]
    return {"Area": 0.0, "Center": "(0, 0, 0)", "Dev": 0.0, "IndexInImage": 0, "Max": 0.0, "Mean": 0.0, "Min": 0.0,
            "Name": name, "NumberOfPoints": len(points), "Point_mm": [f"({x * 0.07}, {y * 0.07}, 0)" for x, y in points],
            "Point_px": [f"({x}, {y})" for x, y in points], "Total": 0.0, "Type": 15 if len(points) > 1 else 19}


def test_inbreast_plist_outlines_density_and_birads(tmp_path: Path) -> None:
    for name, side, view in [("22678622", "R", "CC"), ("22678646", "L", "ML"), ("20587054", "L", "CC")]:
        make_mg_image(tmp_path / "AllDICOMs" / f"{name}_5530d5782fc89dd7_MG_{side}_{view}_ANON.dcm", rows=ROWS,
                      cols=COLS, laterality=side, view="MLO" if view == "ML" else view)
    (tmp_path / "AllXML").mkdir()
    square = [(5.0, 10.0), (15.0, 10.0), (15.0, 20.0), (5.0, 20.0)]
    doc = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 2,
                       "ROIs": [_roi("Mass", square), _roi("Calcification", [(30.0, 40.0)])]}]}
    (tmp_path / "AllXML" / "22678622.xml").write_bytes(plistlib.dumps(doc))
    bad = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 1, "ROIs": [_roi("Mass", [(5.0, 5.0), (90.0, 5.0), (5.0, 9.0)])]}]}
    (tmp_path / "AllXML" / "20587054.xml").write_bytes(plistlib.dumps(bad))
    (tmp_path / "INbreast.csv").write_text(
        "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
        "removed;removed;R;CC;201001;22678622;2;4c\n"
        "removed;removed;L;MLO;201001;22678646;4;1\n"
        "removed;removed;L;CC;201001;20587054;1;5\n"
        "removed;removed;L;MLO;201001;99999999;1;2\n", encoding="utf-8")
    result = read_dataset(tmp_path, "inbreast")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["22678622", "22678646"]
    with_rois = cases["22678622"]
    assert (with_rois.image_labels.density, with_rois.image_labels.assessment, with_rois.image_labels.laterality) == \
        ("b", "4C", "R")
    labels = with_rois.label.voxels[0]
    assert labels[15, 10] == 1 and labels[10, 5] == 1 and labels[21, 10] == 0       # the square, edges included
    assert int((labels == 1).sum()) == 11 * 11 and labels[40, 30] == 2              # a one-point calcification
    assert [b.category for b in with_rois.boxes] == ["Mass", "Calcification"]
    normal = cases["22678646"]
    assert normal.label is None and normal.image_labels.density == "d" and normal.image_labels.view == "MLO"
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "outside the 60x40 image" in reasons["20587054"]
    assert reasons["99999999"] == "AllDICOMs/99999999_*.dcm: missing"
    assert str(dcmread(next((tmp_path / "AllDICOMs").glob("22678622_*"))).Modality) == "MG"
