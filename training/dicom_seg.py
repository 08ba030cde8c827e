"""DICOM series + DICOM SEG as a training case — NOT IMPLEMENTED YET.

It will read the CT series into a Volume and the SEG into per-segment masks on the same grid
with the ``imaging`` package (Volume loader, SEG reader), then return a
:class:`training.msd.Case`. The ``imaging`` package is being written; until then this function
raises, and MSD/NIfTI folders (:mod:`training.msd`) are the supported input.
"""
from __future__ import annotations

from pathlib import Path

from training.msd import Case


def read_dicom_seg_case(series_dir: Path, seg_path: Path, name: str | None = None) -> Case:
    """Case from a DICOM CT series folder and a DICOM SEG of it (segments -> label values 1..n).

    Raises:
        NotImplementedError: always, until ``imaging`` provides the Volume and SEG readers.
    """
    raise NotImplementedError(
        f"DICOM+SEG training cases ({series_dir}, {seg_path}) need imaging.volume and imaging.seg; "
        "convert to the MSD layout (training.msd) meanwhile")
