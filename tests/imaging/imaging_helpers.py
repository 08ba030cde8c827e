"""Test-side geometry and helpers for tests/imaging.

The geometry here is written from the DICOM definition (PS3.3 C.7.6.2.1.1)
without :mod:`imaging.geometry`, so that a wrong affine in the package cannot
be cancelled by the same mistake in the test.
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread

from factories import make_slices
from imaging.results import Code
from peers import DCMTK_ENV, Orthanc

MM = Code("mm", "UCUM", "millimeter")
NODULE = Code("27925004", "SCT", "Nodule")
LUNG = Code("39607008", "SCT", "Lung")
ALTERED = Code("49755003", "SCT", "Morphologically Altered Structure")



def rotation(x_deg: float, z_deg: float) -> np.ndarray:
    ax, az = math.radians(x_deg), math.radians(z_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ rx


_OBLIQUE = rotation(20.0, 15.0)
#: (Image Orientation (Patient), Patient Position) of the round-trip cases.
CASES: dict[str, tuple[tuple[float, ...], str]] = {
    "axial_head_first": ((1, 0, 0, 0, 1, 0), "HFS"),
    "axial_feet_first": ((-1, 0, 0, 0, 1, 0), "FFS"),
    "coronal": ((1, 0, 0, 0, 0, -1), "HFS"),
    "sagittal": ((0, 1, 0, 0, 0, -1), "HFS"),
    "oblique": (tuple(_OBLIQUE @ [1, 0, 0]) + tuple(_OBLIQUE @ [0, 1, 0]), "HFS"),
}


@dataclass(frozen=True)
class Phantom:
    """A written series with a bright sphere at a known LPS centre."""

    paths: list[Path]
    centre_lps: np.ndarray
    radius_mm: float
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    slice_step_mm: float
    shape: tuple[int, int, int]


def pixel_lps(position: np.ndarray, orientation: tuple[float, ...], pixel_spacing: tuple[float, float],
              rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """LPS of pixel centres (rows, cols) of a slice: IPP + col × ΔC × row-cosines + row × ΔR × column-cosines."""
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return (np.asarray(position, float) + np.outer(cols * pixel_spacing[1], row_dir)
            + np.outer(rows * pixel_spacing[0], col_dir))


def write_phantom(out_dir: Path, orientation: tuple[float, ...], patient_position: str = "HFS", *,
                  shape: tuple[int, int, int] = (24, 40, 48), pixel_spacing: tuple[float, float] = (0.8, 0.9),
                  step_mm: float = 1.5, centre_index: tuple[float, float, float] = (9.3, 14.6, 30.2),
                  radius_mm: float = 4.0, shuffle: bool = True) -> Phantom:
    """Write a CT series: sphere of 1000 HU (0 elsewhere) around the LPS point at *centre_index* (k, r, c)."""
    n, rows, cols = shape
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-17.0, 23.0, 41.0])
    positions = [origin + k * step_mm * normal for k in range(n)]
    k0, r0, c0 = centre_index
    centre = pixel_lps(origin + k0 * step_mm * normal, orientation, pixel_spacing, np.array([r0]), np.array([c0]))[0]
    rr, cc = np.mgrid[:rows, :cols]
    voxels = np.zeros(shape, dtype=np.float32)
    for k in range(n):
        lps = pixel_lps(positions[k], orientation, pixel_spacing, rr.ravel(), cc.ravel())
        inside = np.linalg.norm(lps - centre, axis=1) <= radius_mm
        voxels[k] = np.where(inside, 1000.0, 0.0).reshape(rows, cols)
    numbers = list(range(n, 0, -1)) if shuffle else None  # Instance Number runs against the position
    paths = make_slices(out_dir, voxels, positions, orientation=orientation, pixel_spacing=pixel_spacing,
                        thickness=step_mm, instance_numbers=numbers,
                        per_slice=[{"PatientPosition": patient_position}] * n)
    if shuffle:
        paths = [paths[i] for i in np.random.default_rng(7).permutation(n)]
    return Phantom(paths, centre, radius_mm, tuple(orientation), pixel_spacing, step_mm, shape)


def seg_centroid_lps(path: Path, segment_number: int = 1) -> np.ndarray:
    """Centroid (LPS mm) of a segment read from a SEG file with pydicom, from its own functional groups."""
    seg = dcmread(path)
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = tuple(float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient)
    spacing = tuple(float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    points = []
    for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ident = item if "SegmentIdentificationSequence" in item else shared  # one segment: shared group
        if int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment_number:
            continue
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        rr, cc = np.nonzero(frames[i])
        points.append(pixel_lps(position, orientation, spacing, rr, cc))  # type: ignore[arg-type]
    return np.concatenate(points).mean(axis=0)


def error_in_voxels(affine: np.ndarray, a_lps: np.ndarray, b_lps: np.ndarray) -> float:
    """Largest per-axis distance between two LPS points, in voxels of the grid *affine*."""
    return float(np.max(np.abs(np.linalg.solve(affine[:3, :3], np.asarray(a_lps) - np.asarray(b_lps)))))


def c_store(orthanc: Orthanc, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """C-STORE *files* into *orthanc* with dcmtk storescu (propose the files' own transfer syntaxes)."""
    cmd = ["storescu", "-R", "-aet", "AIWSTEST", "-aec", orthanc.aet, "127.0.0.1", str(orthanc.dicom_port),
           *[str(f) for f in files]]
    return subprocess.run(cmd, capture_output=True, text=True, env=DCMTK_ENV, timeout=120)
