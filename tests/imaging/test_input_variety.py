"""Input variety every pipeline accepts or refuses clearly (issue 28, item 4): each case is a series written
by pydicom; :func:`load_volume` / :func:`choose` either give the right voxels and affine, or raise an
:class:`ImagingError` naming the series and the rule.

What the loader does with each (the pipelines load with the default ``LoadOptions()``):
- reversed slice order (files and Instance Numbers running against the normal): the same volume as forward;
- a missing slice: refused (``GeometryError`` naming the series, the count and the gap); interpolated only
  with ``LoadOptions(regrid=True)``, which no pipeline sets;
- gantry tilt: accepted, kept as a sheared affine (voxels at their true LPS positions) and reported as a
  ``GANTRY_TILT`` issue naming the series and the angle; coronary scoring refuses a stack more than about
  10 degrees off the patient axes (``NoSuitableSeries`` naming the series), the lung pipeline carries the
  shear through its grids;
- non-square pixels, unsigned pixel data with a rescale intercept, enhanced multi-frame MR and CT,
  JPEG 2000 and JPEG-LS lossless: the same voxels as the plain single-frame series;
- several series in a study: :func:`imaging.series.choose` picks one and logs the choice (UIDs only).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid

from factories import make_ct_series, make_enhanced_mr_cine, make_slices
from imaging.errors import GeometryError, ImagingError
from imaging.geometry import IssueKind
from imaging.rules import MatchRules
from imaging.series import choose, group_series
from imaging.volume import LoadOptions, load_volume
from models.coronary_ct.volume_io import Canonical
from models.errors import NoSuitableSeries

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _voxels(n: int, rows: int = 40, cols: int = 36, seed: int = 1) -> np.ndarray:
    """HU-like values, different in every voxel (catches transposes and slice swaps)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-1000.0, 1500.0, (n, rows, cols))).astype(np.float32)


def _positions(n: int, step: float = 2.0, z0: float = -30.0) -> list[tuple[float, float, float]]:
    return [(-15.0, -20.0, z0 + k * step) for k in range(n)]


def _series_uid(paths: list[Path]) -> str:
    return str(dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)


def test_reversed_slice_order_gives_the_forward_volume(tmp_path: Path) -> None:
    voxels = _voxels(7)
    positions = _positions(7)
    forward = make_slices(tmp_path / "fwd", voxels, positions)
    # Written head first: file 0 holds the last slice, Instance Numbers run the same (reversed) way.
    backward = make_slices(tmp_path / "rev", voxels[::-1], positions[::-1])
    shuffled = [backward[i] for i in (3, 0, 6, 1, 5, 2, 4)]
    a, b = load_volume(forward), load_volume(shuffled)
    assert np.array_equal(a.voxels, b.voxels)
    assert np.allclose(a.affine, b.affine)
    assert np.allclose(a.affine[:3, 3], positions[0]) and a.spacing_mm[0] == pytest.approx(2.0)
    assert a.issues == () and b.issues == ()


def test_missing_slice_is_refused_naming_the_series_and_the_gap(tmp_path: Path) -> None:
    voxels, positions = _voxels(8), _positions(8)
    keep = [k for k in range(8) if k != 4]
    paths = make_slices(tmp_path, voxels[keep], [positions[k] for k in keep])
    uid = _series_uid(paths)
    with pytest.raises(GeometryError) as refused:
        load_volume(paths)
    assert isinstance(refused.value, ImagingError)
    message = str(refused.value)
    assert f"series {uid}" in message
    assert "1 slices missing at 2.000 mm spacing" in message and "gaps at -24.00--20.00 mm" in message
    regridded = load_volume(paths, LoadOptions(regrid=True))  # opt-in: the missing plane is interpolated
    assert regridded.shape[0] == 8 and regridded.sources[4] is None
    assert np.allclose(regridded.voxels[4], (voxels[3] + voxels[5]) / 2, atol=1e-3)
    assert [i.kind for i in regridded.issues] == [IssueKind.MISSING_SLICES, IssueKind.REGRIDDED]


def test_varying_spacing_is_refused_naming_the_series(tmp_path: Path) -> None:
    z = [0.0, 2.0, 4.0, 5.3, 7.0, 9.0]
    paths = make_slices(tmp_path, _voxels(len(z)), [(0.0, 0.0, zk) for zk in z])
    with pytest.raises(GeometryError, match=rf"series {_series_uid(paths)}: slice spacing varies \(1.300-2.000 mm\)"):
        load_volume(paths)


def test_gantry_tilt_is_kept_as_a_sheared_affine_and_reported(tmp_path: Path) -> None:
    tilt = math.radians(12.0)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt))  # image plane tilted about x
    n, step = 6, 2.5
    positions = [(-10.0, -12.0, 4.0 + k * step) for k in range(n)]  # table motion along z, not along the normal
    voxels = _voxels(n, 20, 24)
    paths = make_slices(tmp_path, voxels, positions, orientation=orientation, pixel_spacing=(1.0, 1.0),
                        per_slice=[{"GantryDetectorTilt": 12.0}] * n)
    volume = load_volume(paths)
    (issue,) = volume.issues
    assert issue.kind == IssueKind.GANTRY_TILT and issue.value == pytest.approx(12.0, abs=0.01)
    assert f"series {_series_uid(paths)}" in issue.message and "gantry tilt" in issue.message
    # Every voxel sits at its true LPS position: the k axis follows the table, not the normal.
    assert np.allclose(volume.index_to_lps(np.array([[k, 0.0, 0.0] for k in range(n)])), positions, atol=1e-3)
    assert volume.spacing_mm[0] == pytest.approx(step * math.cos(tilt), abs=1e-3)
    assert np.array_equal(volume.voxels, voxels)


@pytest.mark.parametrize(("tilt_deg", "refused"), [(5.0, False), (15.0, True)])
def test_coronary_scoring_refuses_a_tilt_beyond_10_degrees_naming_the_series(tmp_path: Path, tilt_deg: float,
                                                                              refused: bool) -> None:
    tilt = math.radians(tilt_deg)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt))
    paths = make_slices(tmp_path, _voxels(4, 16, 16), [(0.0, 0.0, 3.0 * k) for k in range(4)],
                        orientation=orientation)
    volume = load_volume(paths)
    if not refused:
        assert Canonical.of(volume) == Canonical(False, False, False)
        return
    with pytest.raises(NoSuitableSeries, match=rf"series {volume.series_uid}: not an axial stack"):
        Canonical.of(volume)


def test_non_square_pixels_give_the_right_spacing_and_affine(tmp_path: Path) -> None:
    voxels = _voxels(4, 30, 20)
    positions = [(-20.0, 5.0 + 3.0 * k, 30.0) for k in range(4)]  # the coronal normal is +y
    # Coronal: rows run along -z (foot), columns along +x; Pixel Spacing (row 0.6 mm, column 1.1 mm).
    paths = make_slices(tmp_path, voxels, positions, orientation=CORONAL, pixel_spacing=(0.6, 1.1))
    volume = load_volume(paths)
    assert volume.spacing_mm == pytest.approx((3.0, 0.6, 1.1))
    assert np.allclose(volume.affine[:3, 1], (0.0, 0.0, -0.6))  # one row down: 0.6 mm towards the feet
    assert np.allclose(volume.affine[:3, 2], (1.1, 0.0, 0.0))  # one column right: 1.1 mm along x
    r, c = 17, 9
    assert np.allclose(volume.index_to_lps(np.array([[2.0, r, c]]))[0], (-20.0 + 1.1 * c, 11.0, 30.0 - 0.6 * r))
    assert np.array_equal(volume.voxels, voxels)


@pytest.mark.parametrize(("bits_stored", "intercept", "stored_max"), [
    (12, -1024.0, 4095),  # the usual unsigned 12-bit CT
    (16, -32768.0, 65535),  # stored values above 32767: read as signed they would wrap
])
def test_unsigned_pixel_data_with_a_rescale_intercept_gives_hu(tmp_path: Path, bits_stored: int, intercept: float,
                                                               stored_max: int) -> None:
    rng = np.random.default_rng(3)
    stored = rng.integers(0, stored_max + 1, (3, 16, 18), dtype=np.uint16)
    stored[0, 0, 0], stored[0, 0, 1] = 0, stored_max
    paths = make_ct_series(tmp_path, 3, 16, 18, intercept=intercept)
    for k, path in enumerate(paths):
        ds = dcmread(path)
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, bits_stored, bits_stored - 1
        ds.PixelData = stored[k].tobytes()
        ds.save_as(path)
    volume = load_volume(paths)
    assert volume.voxels.dtype == np.float32
    assert np.array_equal(volume.voxels, stored.astype(np.float32) + np.float32(intercept))
    assert volume.voxels[0, 0, 0] == intercept and volume.voxels[0, 0, 1] == stored_max + intercept


def test_enhanced_multi_frame_mr_matches_the_classic_series(tmp_path: Path) -> None:
    n, rows, cols, thickness = 5, 24, 28, 6.0
    origin = (-20.0, 30.0, 40.0)
    frames = np.round(np.random.default_rng(4).uniform(0, 4000, (n, 1, rows, cols))).astype(np.float32)
    enhanced = make_enhanced_mr_cine(tmp_path / "enhanced.dcm", n, 1, rows, cols, frames=frames,
                                     thickness=thickness, orientation=CORONAL, origin=origin)
    normal = np.cross(CORONAL[:3], CORONAL[3:])
    classic = make_slices(tmp_path / "classic", frames[:, 0], [np.array(origin) + k * thickness * normal
                                                               for k in range(n)],
                          orientation=CORONAL, pixel_spacing=(1.5, 1.25), thickness=thickness, modality="MR",
                          intercept=0.0)
    multi, single = load_volume([enhanced]), load_volume(classic)
    assert np.array_equal(multi.voxels, single.voxels)
    assert np.allclose(multi.affine, single.affine, atol=1e-4)
    assert [s.frame_number for s in multi.sources] == list(range(1, n + 1))


def test_enhanced_ct_with_unsigned_pixels_matches_the_classic_series(tmp_path: Path) -> None:
    voxels = _voxels(5, 20, 22)
    classic = make_slices(tmp_path / "classic", voxels, _positions(5, 1.5))
    datasets = []
    for path in classic:  # unsigned 12-bit with intercept -1024, as many scanners store CT
        ds = dcmread(path)
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
        ds.PixelData = ds.pixel_array.astype(np.uint16).tobytes()  # stored 24..2524: the same as unsigned
        datasets.append(ds)
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(datasets, generate_uid(), 2, generate_uid(), 1)
    enhanced.save_as(tmp_path / "enhanced.dcm")
    multi, single = load_volume([tmp_path / "enhanced.dcm"]), load_volume(classic)
    assert np.array_equal(multi.voxels, single.voxels)
    assert np.allclose(multi.affine, single.affine, atol=1e-4)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless])
@pytest.mark.parametrize("signed", [True, False])
def test_jpeg_2000_and_jpeg_ls_series_equal_the_uncompressed_series(tmp_path: Path, syntax: str,
                                                                    signed: bool) -> None:
    voxels = _voxels(4, 64, 48)  # JPEG 2000 needs at least 2^5 pixels per side (5 resolution levels)
    # signed: 16-bit stored values below 0 (intercept 0); unsigned: 12-bit stored 0..4095, intercept -1024.
    plain = make_slices(tmp_path / "plain", voxels, _positions(4), intercept=0.0 if signed else -1024.0)
    (tmp_path / "packed").mkdir()
    packed = []
    for path in plain:
        ds = dcmread(path)
        if not signed:
            ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
            ds.PixelData = ds.pixel_array.astype(np.uint16).tobytes()
            ds.save_as(path)
        ds.compress(syntax)
        packed.append(tmp_path / "packed" / path.name)
        ds.save_as(packed[-1])
    assert dcmread(packed[0]).file_meta.TransferSyntaxUID == syntax
    assert dcmread(packed[0]).PixelRepresentation == int(signed)
    a, b = load_volume(packed), load_volume(plain)
    assert np.array_equal(a.voxels, voxels) and np.array_equal(a.voxels, b.voxels)
    assert np.allclose(a.affine, b.affine)


def _lung_prefer(s):  # type: ignore[no-untyped-def]
    """The lung pipeline's preference: the thinnest, then the one with most images."""
    return float(s.get("SliceThickness", 99) or 99), -len(s.files)


def test_several_series_in_a_study_the_right_one_chosen_and_logged(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    study = generate_uid()
    thick = make_ct_series(tmp_path / "thick", 6, 16, 16, spacing=(0.7, 0.7, 5.0), study_uid=study,
                           description="CHEST 5mm")
    thin = make_ct_series(tmp_path / "thin", 12, 16, 16, spacing=(0.7, 0.7, 1.0), study_uid=study,
                          description="CHEST 1mm")
    mip = make_ct_series(tmp_path / "mip", 12, 16, 16, spacing=(0.7, 0.7, 0.5), study_uid=study,
                         description="CHEST MIP")
    for path in mip:  # thinner still, but a derived reformat: never the one measured
        ds = dcmread(path)
        ds.ImageType = ["DERIVED", "SECONDARY", "MIP"]
        ds.save_as(path)
    coronal = make_ct_series(tmp_path / "cor", 12, 16, 16, spacing=(0.7, 0.7, 0.8), study_uid=study,
                             orientation=CORONAL, description="CHEST COR")
    grouped = group_series(thick + thin + mip + coronal)
    assert len(grouped) == 4
    rules = MatchRules.parse({"Modality": "CT", "Orientation": "AXIAL"})
    with caplog.at_level(logging.INFO, logger="imaging.series"):
        chosen = choose(grouped.values(), rules, prefer=_lung_prefer, original_only=True)
    assert chosen is not None and chosen.series_uid == _series_uid(thin)
    record = next(r.getMessage() for r in caplog.records if "chose series" in r.getMessage())
    assert chosen.series_uid in record and _series_uid(thick) in record and _series_uid(mip) in record
    assert "PHANTOM" not in record and "CHEST" not in record  # UIDs and counts only, no tag values
    assert load_volume(chosen.instances).spacing_mm[0] == pytest.approx(1.0)
    # Nothing fits: None, the pipeline then refuses naming the study (NoSuitableSeries).
    assert choose(grouped.values(), MatchRules.parse({"Modality": "MR"}), prefer=_lung_prefer) is None
