"""Write a calcium-score phantom as a DICOM CT series (what a scanner would send), with pydicom.

UIDs derive from the seed, so the same phantom always gives the same study.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.coronary_ct.phantom import CalciumPhantom
from training.ct_dicom import CtSeriesInfo, write_ct_series


def study_info(seed: int, increment_mm: float) -> CtSeriesInfo:
    """The attributes of the phantom's study and series (no real person)."""
    return CtSeriesInfo(seed_text=f"cac-{seed}", patient_id="PHANTOM-CAC", patient_name="PHANTOM^CALCIUM", sex="M",
                        birth_date="19620101", accession="CAC0001", study_description="CT CARDIAC CALCIUM SCORE",
                        series_description=f"CaSc {increment_mm:.1f}mm 120kV", body_part="HEART", window=(40.0, 400.0))


def write_series(phantom: CalciumPhantom, out_dir: Path, info: CtSeriesInfo | None = None) -> list[Path]:
    """Write one file per slice (CT Image Storage, axial, 120 kVp, HU = stored - 1024) with
    :func:`training.ct_dicom.write_ct_series`; return the paths in slice order."""
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, phantom.increment_mm)  # slice index -> +z
    affine[:3, 1] = (0.0, phantom.pixel_spacing_mm, 0.0)  # row index -> +y
    affine[:3, 2] = (phantom.pixel_spacing_mm, 0.0, 0.0)  # column index -> +x
    affine[:3, 3] = phantom.origin_mm
    return write_ct_series(phantom.hu, affine, out_dir, info or study_info(phantom.seed, phantom.increment_mm))
