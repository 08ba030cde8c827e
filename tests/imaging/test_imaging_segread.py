"""Reading SEGs onto a source volume: a third-party SEG (pydicom-data), overlapping segments, mismatches."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from factories import make_slices
from imaging.errors import GeometryError, ReadError
from imaging.provenance import save_dataset
from imaging.results import ResultContext, Segment
from imaging.seg import write_seg
from imaging.segread import read_seg
from imaging.volume import load_volume
from imaging_helpers import ALTERED, NODULE, write_phantom


def test_pydicom_data_liver_seg_lands_on_a_matching_series(tmp_path: Path) -> None:
    seg = dcmread(get_testdata_file("liver.dcm"))
    frames = seg.PerFrameFunctionalGroupsSequence
    positions = [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in frames]
    order = [2, 0, 1]  # files written out of order: the volume sorts them, the reader places by position
    shared = seg.SharedFunctionalGroupsSequence[0]
    spacing = tuple(float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    paths = make_slices(tmp_path, np.zeros((3, 512, 512), np.float32), [positions[i] for i in order],
                        pixel_spacing=spacing, per_slice=[{"FrameOfReferenceUID": seg.FrameOfReferenceUID}] * 3)
    volume = load_volume(paths)
    [liver] = read_seg(get_testdata_file("liver.dcm"), volume)
    assert liver.label == "Liver" and liver.property_type is not None
    by_z = np.argsort([p[2] for p in positions])
    expected = seg.pixel_array.reshape(3, 512, 512)[by_z] > 0
    assert np.array_equal(liver.mask, expected)
    assert liver.mask.sum(axis=(1, 2)).tolist() == [int(expected[k].sum()) for k in range(3)]


def test_overlapping_segments_read_back_apart(tmp_path: Path, context: ResultContext) -> None:
    phantom = write_phantom(tmp_path / "ct", (0, 1, 0, 0, 0, -1), shape=(10, 24, 28), centre_index=(4.0, 11.0, 13.0))
    volume = load_volume(phantom.paths)
    a, b = np.zeros(volume.shape, bool), np.zeros(volume.shape, bool)
    a[2:6, 4:12, 4:12] = True
    b[4:9, 8:20, 8:20] = True
    path = save_dataset(write_seg(volume, [Segment("A", ALTERED, NODULE, a), Segment("B", ALTERED, NODULE, b)],
                                  context), tmp_path / "out")
    masks = read_seg(path, volume)
    assert [m.label for m in masks] == ["A", "B"]
    assert np.array_equal(masks[0].mask, a) and np.array_equal(masks[1].mask, b)


def test_seg_of_another_series_is_refused(tmp_path: Path, context: ResultContext) -> None:
    axial = load_volume(write_phantom(tmp_path / "a", (1, 0, 0, 0, 1, 0), shape=(6, 16, 16),
                                      centre_index=(3.0, 8.0, 8.0)).paths)
    coronal = load_volume(write_phantom(tmp_path / "c", (1, 0, 0, 0, 0, -1), shape=(6, 16, 16),
                                        centre_index=(3.0, 8.0, 8.0)).paths)
    seg = write_seg(axial, [Segment("A", ALTERED, NODULE, axial.voxels > 500)], context)
    with pytest.raises(GeometryError, match="frame of reference"):
        read_seg(seg, coronal)
    other = replace(coronal, frame_of_reference_uid=axial.frame_of_reference_uid)
    with pytest.raises(GeometryError, match="differs from the volume's"):
        read_seg(seg, other)
    with pytest.raises(ReadError, match="not a Segmentation"):
        read_seg(axial.sources[0].path, axial)
