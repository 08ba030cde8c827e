"""Reading edge cases, each with a real file written by pydicom (or a pydicom-data sample)."""
from __future__ import annotations

import math
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from factories import make_ct_series, make_slices
from imaging.errors import GeometryError, ReadError
from imaging.geometry import IssueKind, orientation_label
from imaging.volume import LoadOptions, load_phases, load_volume
from imaging_helpers import pixel_lps, write_phantom

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _ramp(n: int, rows: int = 6, cols: int = 5) -> np.ndarray:
    """Slice k holds the value 100 × k everywhere (plus the pixel index, to catch transposes)."""
    base = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    return np.stack([base + 100.0 * k for k in range(n)])


def _axial_positions(z: list[float]) -> list[tuple[float, float, float]]:
    return [(-10.0, -20.0, zk) for zk in z]


def test_slices_sorted_along_the_normal_not_by_instance_number(tmp_path: Path) -> None:
    voxels = _ramp(6)
    z = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    paths = make_slices(tmp_path, voxels, _axial_positions(z), instance_numbers=[4, 1, 6, 2, 5, 3])
    volume = load_volume(list(reversed(paths)))
    assert np.array_equal(volume.voxels, voxels)
    assert [s.header.InstanceNumber for s in volume.sources] == [4, 1, 6, 2, 5, 3]
    assert volume.affine[2, 0] == pytest.approx(2.0) and volume.affine[2, 3] == pytest.approx(0.0)
    assert volume.issues == ()


def test_rescale_per_slice_and_12_bit_signed_values(tmp_path: Path) -> None:
    voxels = 2.0 * _ramp(3) - 1000.0  # even values: exact with slope 2
    paths = make_slices(tmp_path / "a", voxels[:1], _axial_positions([0.0]), slope=1.0, intercept=0.0,
                        bits_stored=12)
    paths += make_slices(tmp_path / "b", voxels[1:], _axial_positions([1.0, 2.0]), slope=2.0, intercept=-1024.0,
                         study_uid=dcmread(paths[0]).StudyInstanceUID, series_uid=dcmread(paths[0]).SeriesInstanceUID)
    ds = dcmread(paths[0])
    assert ds.BitsStored == 12 and ds.pixel_array.min() < 0  # negative 12-bit values need sign extension
    volume = load_volume(paths)
    assert np.array_equal(volume.voxels, voxels)
    assert volume.voxels.dtype == np.float32


def test_missing_slice_is_an_error_or_interpolated(tmp_path: Path) -> None:
    voxels = _ramp(5)
    paths = make_slices(tmp_path, voxels, _axial_positions([0.0, 2.5, 5.0, 10.0, 12.5]))
    with pytest.raises(GeometryError, match="1 slices missing at 2.500 mm"):
        load_volume(paths)
    volume = load_volume(paths, LoadOptions(regrid=True))
    assert volume.shape[0] == 6
    assert [i.kind for i in volume.issues] == [IssueKind.MISSING_SLICES, IssueKind.REGRIDDED]
    assert volume.sources[3] is None and volume.sources[4] is not None
    assert np.allclose(volume.voxels[3], (voxels[2] + voxels[3]) / 2)
    assert np.array_equal(volume.voxels[4], voxels[3])


def test_varying_spacing_is_an_error_or_regridded(tmp_path: Path) -> None:
    z = [0.0, 1.0, 2.0, 3.5, 5.0, 6.0]
    paths = make_slices(tmp_path, _ramp(6), _axial_positions(z))
    with pytest.raises(GeometryError, match=r"slice spacing varies \(1.000-1.500 mm\)"):
        load_volume(paths)
    volume = load_volume(paths, LoadOptions(regrid=True))
    assert volume.issues[0].kind == IssueKind.VARYING_SPACING
    assert volume.shape[0] == 7 and volume.spacing_mm[0] == pytest.approx(1.0)
    assert np.allclose(volume.voxels[3, 0, 0], 200.0 + 100.0 * (1.0 / 1.5))  # z = 3 between z = 2 and 3.5


def test_duplicate_positions_split_by_temporal_position(tmp_path: Path) -> None:
    z = [0.0, 2.0, 4.0]
    phase_a, phase_b = _ramp(3), _ramp(3) + 5000.0
    voxels = np.concatenate([phase_a, phase_b])
    extra = [{"TemporalPositionIdentifier": 1}] * 3 + [{"TemporalPositionIdentifier": 2}] * 3
    paths = make_slices(tmp_path, voxels, _axial_positions(z + z), per_slice=extra)
    with pytest.raises(GeometryError, match="3 slices share a position"):
        load_volume(paths)
    phases = load_phases(paths)
    assert [(p.phase.keyword, p.phase.value) for p in phases] == [("TemporalPositionIdentifier", 1.0),
                                                                   ("TemporalPositionIdentifier", 2.0)]
    assert np.array_equal(phases[0].voxels, phase_a) and np.array_equal(phases[1].voxels, phase_b)


def test_duplicate_positions_split_by_trigger_time_rank(tmp_path: Path) -> None:
    z = [0.0, 8.0]
    times = [[0.0, 300.0, 600.0], [1.7, 301.7, 601.7]]  # differ between locations: split by rank
    voxels, positions, extra = [], [], []
    for loc, zk in enumerate(z):
        for phase, t in enumerate(times[loc]):
            voxels.append(np.full((4, 4), 1000.0 * phase + loc, dtype=np.float32))
            positions.append((0.0, 0.0, zk))
            extra.append({"TriggerTime": t})
    paths = make_slices(tmp_path, np.stack(voxels), positions, modality="MR", intercept=0.0, per_slice=extra)
    phases = load_phases(paths)
    assert [p.phase.keyword for p in phases] == ["TriggerTime"] * 3
    assert [p.phase.value for p in phases] == pytest.approx([0.85, 300.85, 600.85])
    assert phases[2].voxels[:, 0, 0].tolist() == [2000.0, 2001.0]


def test_duplicate_positions_split_by_cardiac_phase_percent(tmp_path: Path) -> None:
    z = [0.0, 3.0]
    extra = [{"NominalPercentageOfCardiacPhase": p} for p in (70, 70, 40, 40)]
    paths = make_slices(tmp_path, _ramp(4), _axial_positions(z + z), per_slice=extra)
    phases = load_phases(paths)
    assert [p.phase.value for p in phases] == [40.0, 70.0]
    assert phases[0].voxels[:, 0, 0].tolist() == [200.0, 300.0]


def test_duplicate_positions_without_a_telling_attribute_are_an_error(tmp_path: Path) -> None:
    paths = make_slices(tmp_path, _ramp(4), _axial_positions([0.0, 3.0, 0.0, 3.0]))
    with pytest.raises(GeometryError, match="no attribute of"):
        load_phases(paths)


def test_gantry_tilt_keeps_a_sheared_affine(tmp_path: Path) -> None:
    tilt = math.radians(15.0)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt))  # image plane tilted about x
    n, step = 12, 2.0
    positions = [np.array([-20.0, -15.0, 3.0 + k * step]) for k in range(n)]  # the table moves along z only
    centre = pixel_lps(positions[6], orientation, (1.0, 1.0), np.array([12.0]), np.array([14.0]))[0]
    rr, cc = np.mgrid[:30, :30]
    voxels = np.zeros((n, 30, 30), dtype=np.float32)
    for k in range(n):
        lps = pixel_lps(positions[k], orientation, (1.0, 1.0), rr.ravel(), cc.ravel())
        voxels[k] = np.where(np.linalg.norm(lps - centre, axis=1) <= 3.0, 1000.0, 0.0).reshape(30, 30)
    paths = make_slices(tmp_path, voxels, positions, orientation=orientation, pixel_spacing=(1.0, 1.0),
                        per_slice=[{"GantryDetectorTilt": 15.0}] * n)
    volume = load_volume(paths)
    assert volume.issues[0].kind == IssueKind.GANTRY_TILT
    assert volume.issues[0].value == pytest.approx(15.0, abs=0.01)
    assert volume.spacing_mm[0] == pytest.approx(step * math.cos(tilt), abs=1e-3)  # distance between planes
    found = volume.index_to_lps(np.argwhere(volume.voxels > 500).mean(axis=0)[np.newaxis])[0]
    assert np.linalg.norm(found - centre) < 0.5


def test_mixed_orientations_are_an_error(tmp_path: Path) -> None:
    orientations = [AXIAL, AXIAL, (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)]
    paths = make_slices(tmp_path, _ramp(3), _axial_positions([0.0, 1.0, 2.0]), orientation=orientations)
    with pytest.raises(GeometryError, match=r"mixed orientations \(2 axial, 1 coronal slices\)"):
        load_volume(paths)


def test_orientation_labels() -> None:
    assert orientation_label(AXIAL) == "AXIAL"
    assert orientation_label((1, 0, 0, 0, 0, -1)) == "CORONAL"
    assert orientation_label((0, 1, 0, 0, 0, -1)) == "SAGITTAL"
    c, s = math.cos(math.radians(45)), math.sin(math.radians(45))
    assert orientation_label((1, 0, 0, 0, c, s)) == "OBLIQUE"


def test_enhanced_ct_sample_from_pydicom_data() -> None:
    path = Path(get_testdata_file("eCT_Supplemental.dcm"))
    volume = load_volume([path])
    ds = dcmread(path)
    stored = ds.pixel_array.astype(np.float32) - 1024.0  # shared Pixel Value Transformation: intercept -1024
    # Orientation (-1, 0, 0, 0, 1, 0): the normal is -z, so frame 2 (z = -149) comes before frame 1 (z = -159).
    assert [s.frame_number for s in volume.sources] == [2, 1]
    assert np.array_equal(volume.voxels, stored[::-1])
    assert np.allclose(volume.affine[:3, 3], (99.5, -301.5, -149.0))
    assert np.allclose(volume.affine[:3, 0], (0.0, 0.0, -10.0))
    assert np.allclose(volume.spacing_mm, (10.0, 0.388672, 0.388672))


def test_legacy_converted_enhanced_ct_equals_its_single_frame_series(tmp_path: Path) -> None:
    phantom = write_phantom(tmp_path / "series", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), shape=(8, 20, 24),
                            centre_index=(3.5, 9.0, 11.0), radius_mm=3.0)
    single = load_volume(phantom.paths)
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        [dcmread(p) for p in phantom.paths], generate_uid(), 2, generate_uid(), 1)
    path = tmp_path / "enhanced.dcm"
    enhanced.save_as(path)
    multi = load_volume([path])
    assert np.array_equal(multi.voxels, single.voxels)
    assert np.allclose(multi.affine, single.affine, atol=1e-4)
    assert all(s.frame_number is not None for s in multi.sources)


@pytest.mark.parametrize(("compressed", "reference"), [
    ("693_J2KR.dcm", "693_UNCR.dcm"),  # JPEG 2000 lossless CT (openjpeg); the reference is 14-bit signed
    ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE lossless (pylibjpeg-rle)
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless (pylibjpeg-libjpeg)
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
])
def test_compressed_samples_equal_their_uncompressed_siblings(compressed: str, reference: str) -> None:
    a = load_volume([Path(get_testdata_file(compressed))])
    b = load_volume([Path(get_testdata_file(reference))])
    assert np.array_equal(a.voxels, b.voxels)
    assert np.allclose(a.affine, b.affine)


def test_jpeg_lossless_process_14(tmp_path: Path) -> None:
    ds = dcmread(get_testdata_file("JPEG-LL.dcm"))  # Secondary Capture: give it a plane to make it a slice
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], list(AXIAL)
    ds.save_as(tmp_path / "jpeg_ll.dcm")
    volume = load_volume([tmp_path / "jpeg_ll.dcm"])
    assert ds.PixelRepresentation == 1
    assert np.array_equal(volume.voxels[0], ds.pixel_array.astype(np.float32))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_series_compressed_by_pydicom_encoders(tmp_path: Path, syntax: str) -> None:
    voxels = _ramp(4, 64, 48) - 2000.0  # JPEG 2000 needs at least 2^5 pixels per side (5 resolution levels)
    plain = make_slices(tmp_path / "plain", voxels, _axial_positions([0.0, 1.0, 2.0, 3.0]))
    packed = make_slices(tmp_path / "packed", voxels, _axial_positions([0.0, 1.0, 2.0, 3.0]), transfer_syntax=syntax)
    assert dcmread(packed[0]).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(load_volume(packed).voxels, load_volume(plain).voxels)


def test_files_that_are_not_volumes_raise_read_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(ReadError, match="cannot read DICOM header"):
        load_volume([junk])
    with pytest.raises(ReadError, match="no Image Position"):
        load_volume([Path(get_testdata_file("JPEG-LL.dcm"))])
    with pytest.raises(ReadError, match="3 samples per pixel"):
        ds = dcmread(get_testdata_file("SC_rgb.dcm"))
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], list(AXIAL), [1, 1]
        ds.save_as(tmp_path / "rgb.dcm")
        load_volume([tmp_path / "rgb.dcm"])


def test_pixel_spacing_must_agree_between_slices(tmp_path: Path) -> None:
    a = make_ct_series(tmp_path / "a", 2, 8, 8, spacing=(0.7, 0.7, 2.0), study_uid="1.2.3", series_uid="1.2.3.4")
    b = make_ct_series(tmp_path / "b", 1, 8, 8, spacing=(0.8, 0.8, 2.0), study_uid="1.2.3", series_uid="1.2.3.4",
                       origin=(-100.0, -120.0, -46.0))
    with pytest.raises(GeometryError, match="Pixel Spacing"):
        load_volume(a + b)
