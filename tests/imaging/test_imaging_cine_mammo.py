"""Cine MR (single-frame and enhanced multi-frame) and mammography reading, with files written by pydicom."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from factories import cine_trigger_time_ms, make_enhanced_mr_cine, make_mg_image, make_mr_cine_series
from imaging.cine import load_cine
from imaging.errors import ImagingError, ReadError
from imaging.mammo import load_mammogram
from imaging.volume import load_phases


def _frames(n_loc: int, n_ph: int, rows: int, cols: int) -> np.ndarray:
    """Frame (loc, ph) holds 100 × loc + 10 × ph + 1 everywhere: every frame is recognisable."""
    values = 100.0 * np.arange(n_loc)[:, None] + 10.0 * np.arange(n_ph)[None, :] + 1.0
    return np.broadcast_to(values[:, :, None, None], (n_loc, n_ph, rows, cols)).astype(np.float32)


def test_cine_groups_by_location_and_orders_by_trigger_time(tmp_path: Path) -> None:
    frames = _frames(4, 6, 20, 24)
    paths = make_mr_cine_series(tmp_path, 4, 6, 20, 24, frames=frames, thickness=8.0, gap=2.0)
    shuffled = [paths[i] for i in np.random.default_rng(3).permutation(len(paths))]
    cine = load_cine(shuffled)
    assert len(cine.slices) == 4 and cine.n_phases == 6
    normal = np.cross(cine.slices[0].affine[:3, 2], cine.slices[0].affine[:3, 1])
    positions = [float(s.affine[:3, 3] @ normal / np.linalg.norm(normal)) for s in cine.slices]
    assert np.all(np.diff(positions) > 0)  # locations sorted along the normal
    for loc, cine_slice in enumerate(cine.slices):
        assert cine_slice.time_keyword == "TriggerTime"
        assert cine_slice.times == tuple(cine_trigger_time_ms(loc, ph, 6) for ph in range(6))
        assert np.array_equal(cine_slice.frames, frames[loc])


def test_cine_phase_volume_stacks_one_phase_of_every_location(tmp_path: Path) -> None:
    frames = _frames(4, 6, 20, 24)
    cine = load_cine(make_mr_cine_series(tmp_path, 4, 6, 20, 24, frames=frames, thickness=8.0, gap=2.0))
    volume = cine.phase_volume(2)
    assert np.array_equal(volume.voxels, frames[:, 2])
    assert volume.spacing_mm == pytest.approx((10.0, 1.4, 1.5))  # thickness + gap between slice planes
    assert volume.phase is not None and volume.phase.index == 2
    assert all(s is not None and float(s.header.TriggerTime) == cine_trigger_time_ms(k, 2, 6)
               for k, s in enumerate(volume.sources))
    with pytest.raises(ImagingError, match="phase 6 outside 0..5"):
        cine.phase_volume(6)


def test_enhanced_mr_cine_from_functional_groups(tmp_path: Path) -> None:
    frames = _frames(3, 4, 24, 28)
    path = make_enhanced_mr_cine(tmp_path / "emr.dcm", 3, 4, 24, 28, frames=frames)
    cine = load_cine([path])
    assert [s.time_keyword for s in cine.slices] == ["NominalCardiacTriggerDelayTime"] * 3
    assert cine.slices[1].times == (0.0, 200.0, 400.0, 600.0)
    for loc in range(3):
        assert np.array_equal(cine.slices[loc].frames, frames[loc])
    phases = load_phases([path])
    assert [p.phase.keyword for p in phases] == ["TemporalPositionIndex"] * 4
    assert np.array_equal(phases[3].voxels, frames[:, 3])
    assert phases[3].sources[0].frame_number == 3 * 3 + 1  # frames are stored phase-major
    assert np.allclose(phases[0].spacing_mm, (8.0, 1.5, 1.25))


def test_mammogram_spacing_from_imager_spacing_and_magnification(tmp_path: Path) -> None:
    path = make_mg_image(tmp_path / "mg.dcm", laterality="R", view="MLO", imager_pixel_spacing=(0.1, 0.1),
                         magnification=1.25)
    mg = load_mammogram(path)
    assert mg.pixel_spacing_mm == pytest.approx((0.08, 0.08))
    assert mg.spacing_source == "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    assert (mg.laterality, mg.view, mg.patient_orientation) == ("R", "MLO", ("P", "F"))
    assert np.array_equal(mg.pixels, dcmread(path).pixel_array.astype(np.float32))
    assert not mg.inverted and mg.presentation_intent == "FOR PRESENTATION"


def test_mammogram_pixel_spacing_wins_and_view_from_code_sequence(tmp_path: Path) -> None:
    path = make_mg_image(tmp_path / "mg.dcm", laterality="L", view="CC", pixel_spacing=(0.07, 0.07),
                         view_position=False, image_laterality=False)
    mg = load_mammogram(path)
    assert mg.pixel_spacing_mm == pytest.approx((0.07, 0.07)) and mg.spacing_source == "PixelSpacing"
    assert (mg.laterality, mg.view) == ("L", "CC")


def test_mammogram_without_magnification_keeps_imager_spacing(tmp_path: Path) -> None:
    mg = load_mammogram(make_mg_image(tmp_path / "mg.dcm", magnification=None, imager_pixel_spacing=(0.085, 0.085)))
    assert mg.pixel_spacing_mm == pytest.approx((0.085, 0.085))
    assert mg.spacing_source == "ImagerPixelSpacing (no magnification factor)"


def test_monochrome1_mammogram_is_inverted(tmp_path: Path) -> None:
    stored = np.full((16, 16), 100, dtype=np.uint16)
    stored[4:8, 4:8] = 4000
    mg = load_mammogram(make_mg_image(tmp_path / "mg.dcm", rows=16, cols=16, pixels=stored,
                                      photometric="MONOCHROME1"))
    assert mg.inverted
    assert mg.pixels[0, 0] == 4095 - 100 and mg.pixels[5, 5] == 4095 - 4000  # 12-bit stored range flipped


def test_mammogram_without_laterality_is_an_error(tmp_path: Path) -> None:
    path = make_mg_image(tmp_path / "mg.dcm")
    ds = dcmread(path)
    del ds.ImageLaterality
    ds.save_as(path)
    with pytest.raises(ReadError, match="no Image Laterality or Laterality of L or R"):
        load_mammogram(path)
