"""dicom-seg reader: a CT series written with pydicom, a SEG written with highdicom (as MONAI Label does) and
with dcmqi's itkimage2segimage (3D Slicer's writer), and a TID 1500 SR written by the project's own writer
(imaging.sr) read back as labels and point labels; bad cases skipped with their reasons."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from factories import make_ct_series
from imaging.results import (
    Code,
    Finding,
    Graphic,
    Graphic3D,
    ImageRegion2D,
    ImageRegion3D,
    Measurement,
    QualitativeEvaluation,
    ResultContext,
)
from imaging.sr import write_sr
from imaging.volume import load_volume
from models.coronary_ct.calcium import Vessel
from models.coronary_ct.outputs import CALCIFIED_PLAQUE, CORONARY_ARTERY, SITES
from models.lung_nodules.report import DIAMETER, LONG_AXIS, MM, NODULE, NODULE_TYPE, SHORT_AXIS
from training.readers import DatasetError, read_dataset
from training.readers.case import NoduleType

#: dcmqi's converter, installed into the environment with the test extras (dcmqi wheel).
ITKIMAGE2SEGIMAGE = shutil.which("itkimage2segimage", path=str(Path(sys.executable).parent)) or \
    shutil.which("itkimage2segimage")
CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="2.1.0")


def _seg(paths: list[Path], label: np.ndarray, names: list[str]) -> hd.seg.Segmentation:
    sources = [dcmread(p) for p in paths]
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names, start=1)]
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=label.astype(np.uint8), segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="0",
        device_serial_number="0")


def _nodule_label(shape: tuple[int, int, int]) -> np.ndarray:
    label = np.zeros(shape, dtype=np.uint8)
    label[3:6, 20:26, 30:36] = 1          # "Nodule": centre (4, 22.5, 32.5)
    label[1, 40:44, 10:14] = 2            # "Vessel"
    return label


def test_seg_and_sr_read_back_as_labels_and_points(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    ct = make_ct_series(root / "study1" / "ct", n_slices=8)
    volume = load_volume(ct)
    seg = _seg(ct, _nodule_label(volume.shape), ["Nodule", "Vessel"])
    seg.save_as(root / "study1" / "seg.dcm")
    nodule = Finding("nodule-1", NODULE, measurements=(Measurement(DIAMETER, 7.5, MM),),
                     evaluations=(QualitativeEvaluation(NODULE_TYPE, Code("part-solid", "99AIWS", "part-solid nodule")),),
                     segment_number=1)
    lad = Finding("calcium-LAD", CALCIFIED_PLAQUE, finding_site=SITES[Vessel.LAD],
                  region3d=ImageRegion3D(Graphic3D.ELLIPSOID, ((2, 50, 50), (4, 50, 50), (3, 48, 50), (3, 52, 50),
                                                               (3, 50, 48), (3, 50, 52))))
    total = Finding("calcium-total", CALCIFIED_PLAQUE, finding_site=CORONARY_ARTERY)
    on_image = Finding("nodule-2", NODULE, measurements=(Measurement(LONG_AXIS, 6.0, MM), Measurement(SHORT_AXIS, 4.0, MM)),
                       region=ImageRegion2D(2, Graphic.CIRCLE, ((40.0, 10.0), (40.0, 14.0))))   # centre, then the rim
    sr = write_sr(volume, [nodule, lad, total, on_image], CONTEXT, seg=seg)
    sr.save_as(root / "study1" / "sr.dcm", enforce_file_format=True)

    result = read_dataset(root, "dicom-seg")
    (case,) = result.cases
    assert case.case_id == volume.series_uid
    assert dict(case.label.names) == {1: "Nodule", 2: "Vessel"}
    np.testing.assert_array_equal(case.label.voxels, _nodule_label(volume.shape))
    found, second = case.nodules
    assert found.diameter_mm == 7.5 and found.nodule_type is NoduleType.PART_SOLID
    assert second.diameter_mm == 5.0 and second.nodule_type is None            # mean of long and short axis
    np.testing.assert_allclose(case.image.lps_to_index(np.array([second.centre_lps_mm]))[0], [2, 40, 10], atol=1e-3)
    np.testing.assert_allclose(case.image.lps_to_index(np.array([found.centre_lps_mm]))[0], [4, 22.5, 32.5], atol=1e-3)
    (calcium,) = case.calcium                       # the total over all arteries is not a point label
    assert calcium.vessel == "LAD"
    np.testing.assert_allclose(case.image.lps_to_index(np.array([calcium.centre_lps_mm]))[0], [3, 50, 50], atol=1e-3)
    assert {Path(s.name).name for s in case.sources} >= {"seg.dcm", "sr.dcm", "ct_0000.dcm"}
    assert not any(str(tmp_path) in s.name for s in case.sources)
    assert case.image.sources == ()


def test_bad_cases_are_skipped_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    good = make_ct_series(root / "a" / "ct", n_slices=6)
    _seg(good, _nodule_label((6, 64, 64)), ["Nodule", "Vessel"]).save_as(root / "a" / "seg.dcm")
    # A SEG of a series that is not in the dataset.
    gone = make_ct_series(tmp_path / "elsewhere", n_slices=6)
    _seg(gone, _nodule_label((6, 64, 64)), ["Nodule", "Vessel"]).save_as(root / "b_seg.dcm")
    # A SEG whose frames fall between the slices of its series (the series was re-exported shifted by 1 mm).
    shifted_src = make_ct_series(tmp_path / "orig", n_slices=6, study_uid="1.2.826.0.1.3680043.8.498.77")
    uid = str(dcmread(shifted_src[0]).SeriesInstanceUID)
    _seg(shifted_src, _nodule_label((6, 64, 64)), ["Nodule", "Vessel"]).save_as(root / "c_seg.dcm")
    make_ct_series(root / "c", n_slices=6, series_uid=uid, study_uid="1.2.826.0.1.3680043.8.498.77",
                   origin=(-100.0, -120.0, -49.0))
    # An empty SEG, a series nobody labelled, and a file that is not DICOM.
    empty = make_ct_series(root / "d", n_slices=6)
    _seg(empty, np.zeros((6, 64, 64)), ["Nodule"]).save_as(root / "d_seg.dcm")
    unlabelled = make_ct_series(root / "e", n_slices=4)
    (root / "README.txt").write_text("exported from PACS", encoding="utf-8")

    result = read_dataset(root, "dicom-seg")
    assert [c.case_id for c in result.cases] == [str(dcmread(good[0]).SeriesInstanceUID)]
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert reasons["README.txt"] == "not a DICOM file with Modality, Series and SOP Instance UIDs"
    b_seg = str(dcmread(root / "b_seg.dcm").SOPInstanceUID)
    assert "not an image series of the dataset" in reasons[b_seg]
    assert "is not on a slice of the volume" in reasons[uid]
    assert "is empty" in reasons[str(dcmread(empty[0]).SeriesInstanceUID)]
    assert reasons[str(dcmread(unlabelled[0]).SeriesInstanceUID)] == "no SEG or SR of the dataset refers to this series"


def test_no_series_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DatasetError, match="no DICOM image series"):
        read_dataset(tmp_path, "dicom-seg")


@pytest.mark.skipif(ITKIMAGE2SEGIMAGE is None, reason="dcmqi (itkimage2segimage) not installed")
def test_seg_written_by_dcmqi_as_3d_slicer_writes_it(tmp_path: Path) -> None:
    import nibabel as nib

    from imaging.nifti import save_nifti

    root = tmp_path / "dataset"
    ct = make_ct_series(root / "ct", n_slices=6)
    volume = load_volume(ct)
    label = _nodule_label(volume.shape)
    save_nifti(volume, tmp_path / "label.nii.gz", label)
    assert nib.load(str(tmp_path / "label.nii.gz")).shape == (64, 64, 6)
    meta = {"ContentCreatorName": "Reader1", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "Segmentation", "SeriesNumber": "300", "InstanceNumber": "1",
            "segmentAttributes": [[{
                "labelID": value, "SegmentDescription": name, "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "49755003", "CodingSchemeDesignator": "SCT",
                                                          "CodeMeaning": "Morphologically abnormal structure"},
                "SegmentedPropertyTypeCodeSequence": {"CodeValue": "27925004", "CodingSchemeDesignator": "SCT",
                                                      "CodeMeaning": "Nodule"}} for value, name in
                ((1, "Nodule"), (2, "Vessel"))]],
            "ContentLabel": "SEGMENTATION", "BodyPartExamined": "CHEST"}
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    subprocess.run([ITKIMAGE2SEGIMAGE, "--inputImageList", str(tmp_path / "label.nii.gz"), "--inputDICOMDirectory",
                    str(root / "ct"), "--outputDICOM", str(root / "slicer_seg.dcm"), "--inputMetadata",
                    str(tmp_path / "meta.json")], check=True, capture_output=True, timeout=120)
    (case,) = read_dataset(root, "dicom-seg").cases
    assert sorted(dict(case.label.names).values()) == ["Nodule", "Vessel"]
    names = dict(case.label.names)
    nodule_value = next(v for v, n in names.items() if n == "Nodule")
    np.testing.assert_array_equal(case.label.voxels == nodule_value, label == 1)
