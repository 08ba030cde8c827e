"""Group instance files into series and select series by rules (the shape of ``routes.match``)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import ReadError
from imaging.rules import MatchRules, derived_orientation

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SeriesInfo:
    """One series: its files (sorted by name), a representative header, and its orientation.

    *orientation* is ``AXIAL``/``CORONAL``/``SAGITTAL``/``OBLIQUE`` when every
    instance agrees, ``MIXED`` when they do not, ``""`` for images without one.
    ``get(keyword)`` answers like a dataset, plus the derived ``Orientation``,
    so that :meth:`MatchRules.matches` applies to a series.
    """

    series_uid: str
    study_uid: str
    modality: str
    description: str
    number: int | None
    files: tuple[Path, ...]
    header: Dataset
    orientation: str

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword == "Orientation":
            return self.orientation or default
        return self.header.get(keyword, default)


def _read(path: Path) -> tuple[Path, Dataset | None]:
    try:
        return path, dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        LOGGER.debug("%s: not DICOM (%s)", path, exc)
        return path, None


def group_series(paths: Iterable[Path], *, skip_unreadable: bool = False, workers: int = 4) -> dict[str, SeriesInfo]:
    """Read the headers of *paths* (no pixel data) and group them by Series Instance UID.

    Raises:
        ReadError: a file is not DICOM or has no Series Instance UID (unless *skip_unreadable*).
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        read = list(pool.map(_read, [Path(p) for p in paths]))
    grouped: dict[str, list[tuple[Path, Dataset]]] = {}
    for path, ds in read:
        uid = str(ds.get("SeriesInstanceUID", "")) if ds is not None else ""
        if not uid:
            if skip_unreadable:
                continue
            raise ReadError(f"{path}: not a DICOM instance with a Series Instance UID")
        grouped.setdefault(uid, []).append((path, ds))  # type: ignore[arg-type]
    out = {}
    for uid, members in grouped.items():
        members.sort(key=lambda m: str(m[0]))
        labels = {derived_orientation(ds) or "" for _, ds in members}
        header = members[0][1]
        number = header.get("SeriesNumber")
        out[uid] = SeriesInfo(
            series_uid=uid, study_uid=str(header.get("StudyInstanceUID", "")),
            modality=str(header.get("Modality", "")), description=str(header.get("SeriesDescription", "")),
            number=int(number) if number not in (None, "") else None,
            files=tuple(p for p, _ in members), header=header,
            orientation=labels.pop() if len(labels) == 1 else "MIXED",
        )
    LOGGER.debug("grouped %d files into %d series", len(read), len(out))
    return out


def select_series(series: Iterable[SeriesInfo], rules: MatchRules) -> list[SeriesInfo]:
    """Series matching *rules* (all conditions), by Series Number then UID.

    Rules use DICOM keywords (``Modality``, ``SeriesDescription`` regex,
    ``ImageType`` regex over the backslash-joined values, ``SliceThickness``
    ``[min, max]`` …) and the derived ``Orientation``.
    """
    chosen = [s for s in series if rules.matches(s)]
    return sorted(chosen, key=lambda s: (s.number if s.number is not None else 1 << 30, s.series_uid))
