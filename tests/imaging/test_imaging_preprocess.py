"""Array backend selection and preprocessing: resampling, windowing, cropping."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from imaging.backend import ArrayBackend
from imaging.errors import ImagingError
from imaging.preprocess import bounding_box, crop, resample_array, resample_like, resample_to_spacing, window
from imaging.volume import Volume, load_volume
from imaging_helpers import write_phantom

HAVE_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.fixture(scope="module")
def oblique(tmp_path_factory: pytest.TempPathFactory) -> tuple[Volume, np.ndarray]:
    from imaging_helpers import CASES

    phantom = write_phantom(tmp_path_factory.mktemp("pre"), CASES["oblique"][0], shape=(20, 36, 40),
                            centre_index=(9.0, 17.0, 21.0), radius_mm=5.0)
    return load_volume(phantom.paths), phantom.centre_lps


def _centre(volume: Volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_lps(np.argwhere(mask).mean(axis=0)[np.newaxis])[0]


def test_backend_selection_is_explicit() -> None:
    assert ArrayBackend.select("numpy").name == "numpy"
    with pytest.raises(ImagingError, match="expected 'auto', 'numpy' or 'cupy'"):
        ArrayBackend.select("tpu")
    auto = ArrayBackend.select("auto")
    assert auto.name == ("cupy" if HAVE_CUPY else "numpy")


@pytest.mark.skipif(HAVE_CUPY, reason="cupy is installed: the missing-cupy error cannot be provoked")
def test_cupy_without_cupy_is_an_error() -> None:
    with pytest.raises(ImagingError, match="cupy is not installed"):
        ArrayBackend.select("cupy")


def test_resample_to_spacing_keeps_patient_positions(oblique: tuple[Volume, np.ndarray]) -> None:
    volume, centre = oblique
    backend = ArrayBackend.numpy()
    iso = resample_to_spacing(volume, (1.0, 1.0, 1.0), backend)
    assert iso.spacing_mm == pytest.approx((1.0, 1.0, 1.0))
    assert iso.shape == (round(20 * 1.5), round(36 * 0.8), round(40 * 0.9))
    assert iso.sources == ()
    assert np.linalg.norm(_centre(iso, iso.voxels > 500) - centre) < 0.5
    assert np.allclose(iso.affine[:3, 3], volume.affine[:3, 3])


def test_resample_like_brings_a_mask_back(oblique: tuple[Volume, np.ndarray]) -> None:
    volume, _ = oblique
    backend = ArrayBackend.numpy()
    coarse = resample_to_spacing(volume, (2.0, 2.0, 2.0), backend)
    back = resample_like(coarse.voxels > 500, coarse, volume, backend)
    truth = volume.voxels > 500
    assert back.dtype == bool and back.shape == volume.shape
    dice = 2 * np.sum(back & truth) / (back.sum() + truth.sum())
    assert dice > 0.7
    assert np.linalg.norm(_centre(volume, back) - _centre(volume, truth)) < 1.0


@pytest.mark.parametrize("scale, shape", [((1.3, 0.75, 0.6), (9, 17, 20)), ((0.5, 2.0, 1.0), (30, 6, 13))])
def test_axis_aligned_linear_path_equals_the_general_affine(scale: tuple[float, float, float],
                                                             shape: tuple[int, int, int]) -> None:
    """The separable fast path (axis-aligned grids, order 1) gives scipy's affine_transform values."""
    import scipy.ndimage

    array = np.random.default_rng(2).normal(size=(12, 14, 16)).astype(np.float32)
    source = np.diag([2.0, 0.8, 0.8, 1.0])
    source[:3, 3] = (-5.0, 3.0, 1.0)
    target = source.copy()
    target[:3, :3] = source[:3, :3] * np.array(scale)
    target[:3, 3] += (0.9, -0.4, 1.2)  # also a shift; part of the target lies outside the source
    got = resample_array(array, source, target, shape, ArrayBackend.numpy(), cval=-7.0)
    mapping = np.linalg.solve(source, target)
    want = scipy.ndimage.affine_transform(array, mapping[:3, :3], offset=mapping[:3, 3], output_shape=shape,
                                          order=1, mode="constant", cval=-7.0)
    assert got.dtype == np.float32 and got.shape == shape
    assert (want == -7.0).any() and (want != -7.0).mean() > 0.5  # both inside and outside the source
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_window_maps_to_unit_range() -> None:
    backend = ArrayBackend.numpy()
    values = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32)
    assert window(values, 40.0, 400.0, backend).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    with pytest.raises(ImagingError, match="window width 0"):
        window(values, 40.0, 0.0, backend)


def test_crop_moves_the_origin_and_keeps_sources(oblique: tuple[Volume, np.ndarray]) -> None:
    volume, centre = oblique
    start, stop = bounding_box(volume.voxels > 500, margin=2)
    part = crop(volume, start, stop)
    assert part.shape == tuple(b - a for a, b in zip(start, stop))
    assert np.linalg.norm(_centre(part, part.voxels > 500) - centre) < 0.5
    assert part.sources == volume.sources[start[0]:stop[0]]
    with pytest.raises(ImagingError, match="outside"):
        crop(volume, (0, 0, 0), (21, 5, 5))
    with pytest.raises(ImagingError, match="empty"):
        bounding_box(np.zeros((2, 2, 2), bool))


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUPY, reason="cupy is not installed (no GPU on this machine)")
def test_cupy_matches_numpy(oblique: tuple[Volume, np.ndarray]) -> None:
    volume, _ = oblique
    cpu = resample_to_spacing(volume, (1.0, 1.0, 1.0), ArrayBackend.numpy())
    gpu = resample_to_spacing(volume, (1.0, 1.0, 1.0), ArrayBackend.select("cupy"))
    assert np.allclose(cpu.voxels, gpu.voxels, atol=1e-2)
