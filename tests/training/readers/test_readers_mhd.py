"""MetaImage readers (luna16, orcascore) on .mhd/.raw files written in the published layouts; the header parser
is checked against SimpleITK (ITK's own MetaImageIO) on the same files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from training.readers import DatasetError, read_dataset
from training.readers.mhd import read_mhd

# Direction cosines of the x, y, z array axes (rows of this matrix, as TransformMatrix lists them):
# x along -L (a flipped left-right axis), y and z swapped-and-tilted to catch a transposition.
DIRECTION = np.array([[-1.0, 0.0, 0.0], [0.0, 0.8, 0.6], [0.0, -0.6, 0.8]])


def write_mhd(path: Path, array_zyx: np.ndarray, *, spacing: tuple[float, float, float] = (0.7, 0.8, 2.5),
              offset: tuple[float, float, float] = (-198.1, -195.0, -335.2), direction: np.ndarray | None = None,
              element_type: str = "MET_SHORT", local: bool = False) -> Path:
    """Header lines as LUNA16/orCaScore files have them (x fastest in the .raw file)."""
    nz, ny, nx = array_zyx.shape
    direction = np.eye(3) if direction is None else direction
    data_file = "LOCAL" if local else path.with_suffix(".raw").name
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
        f"TransformMatrix = {' '.join(f'{v:g}' for v in direction.ravel())}\n"
        f"Offset = {' '.join(f'{v:g}' for v in offset)}\nCenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n"
        f"ElementSpacing = {' '.join(f'{v:g}' for v in spacing)}\nDimSize = {nx} {ny} {nz}\n"
        f"ElementType = {element_type}\nElementDataFile = {data_file}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = {"MET_SHORT": "<i2", "MET_UCHAR": "u1"}[element_type]
    payload = np.ascontiguousarray(array_zyx.astype(dtype)).tobytes()
    if local:
        path.write_bytes(header.encode() + payload)
    else:
        path.write_text(header, encoding="ascii")
        path.with_suffix(".raw").write_bytes(payload)
    return path


@pytest.mark.parametrize("local", [False, True])
def test_mhd_geometry_matches_simpleitk(tmp_path: Path, local: bool) -> None:
    array = np.random.default_rng(1).integers(-1000, 1000, (5, 7, 9)).astype(np.int16)
    path = write_mhd(tmp_path / "scan.mhd", array, direction=DIRECTION, local=local)
    volume, files = read_mhd(path)
    assert len(files) == (1 if local else 2)
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(volume.voxels, sitk.GetArrayFromImage(image))      # (k, r, c) = (z, y, x)
    for ijk in [(0, 0, 0), (8, 0, 0), (0, 6, 0), (0, 0, 4), (3, 5, 2)]:
        ours = volume.index_to_lps(np.array([[ijk[2], ijk[1], ijk[0]]], dtype=float))[0]
        np.testing.assert_allclose(ours, image.TransformIndexToPhysicalPoint(ijk), atol=1e-6)


def test_mhd_with_a_short_raw_file_is_refused(tmp_path: Path) -> None:
    path = write_mhd(tmp_path / "scan.mhd", np.zeros((3, 4, 5)))
    path.with_suffix(".raw").write_bytes(b"\0" * 10)
    with pytest.raises(Exception, match="data holds 10 bytes, 120 needed"):
        read_mhd(path)


# ------------------------------------------------------------------------------------------------ luna16
UID1 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"
UID2 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100332161840553388986847034053"
UID3 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100398138793540579077826395208"


def test_luna16_world_coordinates_are_lps_in_the_mhd_frame(tmp_path: Path) -> None:
    shape = (10, 20, 24)
    write_mhd(tmp_path / "subset0" / f"{UID1}.mhd", np.zeros(shape), direction=DIRECTION)
    write_mhd(tmp_path / "subset0" / f"{UID2}.mhd", np.zeros(shape))
    write_mhd(tmp_path / "subset1" / f"{UID3}.mhd", np.zeros(shape))
    image = sitk.ReadImage(str(tmp_path / "subset0" / f"{UID1}.mhd"))
    inside = image.TransformContinuousIndexToPhysicalPoint((12.0, 9.5, 4.0))      # (x, y, z) index
    outside = image.TransformContinuousIndexToPhysicalPoint((12.0, 9.5, 30.0))
    (tmp_path / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
        f"{UID1},{inside[0]},{inside[1]},{inside[2]},6.4\n"
        f"{UID2},{outside[0]},{outside[1]},{outside[2]},5.0\n"
        "1.3.6.1.4.1.14519.5.2.1.6279.6001.999,0,0,0,4.0\n", encoding="utf-8")
    result = read_dataset(tmp_path, "luna16")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == [UID1, UID3]
    (nodule,) = cases[UID1].nodules
    assert nodule.diameter_mm == 6.4 and nodule.nodule_type is None
    np.testing.assert_allclose(cases[UID1].image.lps_to_index(np.array([nodule.centre_lps_mm]))[0],
                               [4.0, 9.5, 12.0], atol=1e-6)
    assert cases[UID3].nodules == ()                                              # a negative scan
    assert {s.name for s in cases[UID1].sources} == {f"subset0/{UID1}.mhd", f"subset0/{UID1}.raw", "annotations.csv"}
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "outside the image" in reasons[UID2]
    assert "no 1.3.6.1.4.1.14519.5.2.1.6279.6001.999.mhd" in reasons["1.3.6.1.4.1.14519.5.2.1.6279.6001.999"]


def test_luna16_without_annotations_is_an_error(tmp_path: Path) -> None:
    write_mhd(tmp_path / "subset0" / f"{UID1}.mhd", np.zeros((2, 3, 4)))
    with pytest.raises(DatasetError, match="annotations.csv"):
        read_dataset(tmp_path, "luna16")


# ------------------------------------------------------------------------------------------------ orcascore
def test_orcascore_vessel_labels_and_lesions(tmp_path: Path) -> None:
    train = tmp_path / "Training Set"
    shape = (6, 16, 16)
    ct = np.full(shape, -50, dtype=np.int16)
    ref = np.zeros(shape, dtype=np.uint8)
    ref[2, 3:5, 3:5] = 1          # LAD lesion, 4 voxels
    ref[4, 10:12, 3:4] = 1        # a second LAD lesion (not 6-connected to the first)
    ref[3, 8:9, 12:15] = 3        # RCA lesion, 3 voxels
    for pid in ("TRV1P1", "TRV2P2", "TRV3P3"):
        write_mhd(train / "Images" / f"{pid}CTI.mhd", ct, spacing=(0.5, 0.5, 3.0))
        write_mhd(train / "Images" / f"{pid}CTAI.mhd", ct, spacing=(0.5, 0.5, 3.0))
    write_mhd(train / "Reference standard" / "TRV1P1R.mhd", ref, spacing=(0.5, 0.5, 3.0), element_type="MET_UCHAR")
    write_mhd(train / "Reference standard" / "TRV2P2R.mhd", ref[:5], spacing=(0.5, 0.5, 3.0), element_type="MET_UCHAR")
    result = read_dataset(tmp_path, "orcascore")
    (case,) = result.cases
    assert case.case_id == "TRV1P1"
    assert dict(case.label.names)[1] == "LAD" and int((case.label.voxels == 3).sum()) == 3
    lesions = sorted((c.vessel, c.volume_mm3) for c in case.calcium)
    assert lesions == [("LAD", pytest.approx(2 * 0.75)), ("LAD", pytest.approx(4 * 0.75)), ("RCA", pytest.approx(3 * 0.75))]
    rca = next(c for c in case.calcium if c.vessel == "RCA")
    np.testing.assert_allclose(case.image.lps_to_index(np.array([rca.centre_lps_mm]))[0], [3, 8, 13], atol=1e-6)
    reasons = {s.case_id: s.reason for s in result.skipped}
    assert "does not match the image" in reasons["TRV2P2"]
    assert "no reference standard" in reasons["TRV3P3"]
