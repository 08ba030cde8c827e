"""Dataset readers: one module per published layout, each giving :class:`~training.readers.case.Case` values.

    result = read_dataset(Path("Task06_Lung"), "msd")
    result.cases      # usable cases
    result.skipped    # (case id, reason) of the cases left out

Formats (:data:`FORMATS`): ``dicom-seg`` (a hospital's DICOM + SEG + TID 1500 SR), ``msd``, ``luna16``, ``lidc``,
``acdc``, ``mnms``, ``orcascore``, ``cbis-ddsm``, ``vindr-mammo``, ``inbreast``; each module's docstring cites
the layout it reads.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from training.readers.case import Case, ReadResult, Skipped
from training.readers.common import DatasetError, collect

LOGGER = logging.getLogger(__name__)

#: Format name -> module (with ``read(root) -> Iterator[Case | Skipped]``), imported when used.
FORMATS: dict[str, str] = {
    "dicom-seg": "training.readers.dicom_seg",
    "msd": "training.readers.msd",
    "luna16": "training.readers.luna16",
    "lidc": "training.readers.lidc",
    "acdc": "training.readers.acdc",
    "mnms": "training.readers.mnms",
    "orcascore": "training.readers.orcascore",
    "cbis-ddsm": "training.readers.cbis_ddsm",
    "vindr-mammo": "training.readers.vindr_mammo",
    "inbreast": "training.readers.inbreast",
}

__all__ = ["FORMATS", "DatasetError", "ReadResult", "iter_dataset", "read_dataset"]


def _reader(fmt: str) -> Callable[[Path], Iterator[Case | Skipped]]:
    if fmt not in FORMATS:
        raise DatasetError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt]).read  # type: ignore[no-any-return]


def iter_dataset(root: Path, fmt: str) -> Iterator[Case | Skipped]:
    """The cases and skipped cases of *root* one at a time (a large dataset need not fit in memory).

    Raises:
        DatasetError: unknown format, no folder, or the layout's index files are missing or malformed.
    """
    reader = _reader(fmt)
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: not a folder")
    return reader(Path(root))


def read_dataset(root: Path, fmt: str) -> ReadResult:
    """Read every case of the dataset folder *root* in layout *fmt*.

    Raises:
        DatasetError: as :func:`iter_dataset`, and when no case is usable (the message lists the first reasons).
    """
    cases, skipped = collect(iter_dataset(root, fmt))
    if not cases:
        reasons = "; ".join(f"{s.case_id}: {s.reason}" for s in skipped[:5]) or "no case found"
        raise DatasetError(f"{Path(root).name}: no usable {fmt} case ({len(skipped)} skipped: {reasons})")
    LOGGER.info("dataset %s (%s): %d cases, %d skipped", Path(root).name, fmt, len(cases), len(skipped))
    return ReadResult(tuple(cases), tuple(skipped))
