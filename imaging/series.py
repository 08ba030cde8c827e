"""Group instance files into series and choose a series by rules (the shape of ``routes.match``).

Headers are read once: :func:`read_instance` keeps each header with its pixel layout (and the file's
size and modification time), :func:`group_series` takes headers already read (``known``) and reads only
the rest, and :func:`imaging.volume.load_volume` takes a series' :class:`InstanceHeader` values, so a
study read at completion is not read again to be grouped or stacked. :func:`choose` is the one chooser
every pipeline uses.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import ReadError
from imaging.headers import PixelLayout, read_any_header
from imaging.rules import MatchRules, derived_orientation

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class InstanceHeader:
    """One instance's header (no pixel data) as read from *path*, with its pixel layout (None: not an
    image) and the file's size and modification time then (:meth:`is_current`)."""

    path: Path
    dataset: Dataset
    layout: PixelLayout | None
    size: int
    mtime_ns: int

    def is_current(self) -> bool:
        """The file is still the one that was read (same size and modification time)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


def read_instance(path: Path) -> InstanceHeader:
    """Read the header of *path* once (no pixel data), keeping what a volume needs of it.

    Raises:
        whatever :func:`pydicom.dcmread` and the file system raise.
    """
    st = os.stat(path)
    ds, layout = read_any_header(Path(path))
    return InstanceHeader(Path(path), ds, layout, st.st_size, st.st_mtime_ns)


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
    instances: tuple[InstanceHeader, ...] = ()  # aligned with *files*: hand these to load_volume / load_cine

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword == "Orientation":
            return self.orientation or default
        return self.header.get(keyword, default)


def _read(path: Path) -> tuple[Path, InstanceHeader | None]:
    try:
        return path, read_instance(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        LOGGER.debug("%s: not DICOM (%s)", path, exc)
        return path, None


def group_series(paths: Iterable[Path], *, skip_unreadable: bool = False, workers: int = 4,
                 known: Mapping[Path, InstanceHeader] | None = None) -> dict[str, SeriesInfo]:
    """Group *paths* by Series Instance UID, reading the headers (no pixel data) of those not in *known*
    (headers already read whose file has not changed since: :meth:`InstanceHeader.is_current`).

    Raises:
        ReadError: a file is not DICOM or has no Series Instance UID (unless *skip_unreadable*).
    """
    known = known or {}
    paths = [Path(p) for p in paths]
    have = {p: known[p] for p in paths if p in known and known[p].is_current()}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        fresh = dict(pool.map(_read, [p for p in paths if p not in have]))
    read = [(p, have.get(p) or fresh.get(p)) for p in paths]
    LOGGER.debug("grouping %d files: %d headers handed in, %d read", len(paths), len(have), len(fresh))
    grouped: dict[str, list[tuple[Path, InstanceHeader]]] = {}
    for path, inst in read:
        uid = str(inst.dataset.get("SeriesInstanceUID", "")) if inst is not None else ""
        if not uid:
            if skip_unreadable:
                continue
            raise ReadError(f"{path}: not a DICOM instance with a Series Instance UID")
        grouped.setdefault(uid, []).append((path, inst))  # type: ignore[arg-type]
    out = {}
    for uid, members in grouped.items():
        members.sort(key=lambda m: str(m[0]))
        labels = {derived_orientation(i.dataset) or "" for _, i in members}
        header = members[0][1].dataset
        number = header.get("SeriesNumber")
        out[uid] = SeriesInfo(
            series_uid=uid, study_uid=str(header.get("StudyInstanceUID", "")),
            modality=str(header.get("Modality", "")), description=str(header.get("SeriesDescription", "")),
            number=int(number) if number not in (None, "") else None,
            files=tuple(p for p, _ in members), header=header,
            orientation=labels.pop() if len(labels) == 1 else "MIXED",
            instances=tuple(i for _, i in members),
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


def is_derived(series: SeriesInfo) -> bool:
    """Image Type says DERIVED (a reformat, MIP, …)."""
    return "DERIVED" in [str(v).upper() for v in (series.get("ImageType") or [])]


def choose(series: Iterable[SeriesInfo], rules: MatchRules, *, prefer: Callable[[SeriesInfo], Any],
           min_files: int = 1, original_only: bool = False) -> SeriesInfo | None:
    """The one series a pipeline measures: among those matching *rules* with at least *min_files*
    files (and, with *original_only*, not DERIVED), the smallest by *prefer*; ties go to the lower
    Series Number, then UID (the order of :func:`select_series`). None when no series fits.
    The choice is logged (INFO) with the series passed over and why, by UID only (no tag values).
    """
    series = list(series)
    matching = select_series(series, rules)
    fitting = [s for s in matching if len(s.files) >= min_files and not (original_only and is_derived(s))]
    chosen = min(fitting, key=prefer) if fitting else None
    if len(series) > 1 or chosen is None:
        def why(s: SeriesInfo) -> str:
            if s not in matching:
                return "rules"
            return "derived" if original_only and is_derived(s) else ("files" if len(s.files) < min_files
                                                                      else "preference")
        skipped = [f"{s.series_uid} ({why(s)})" for s in series if s is not chosen]
        LOGGER.info("chose series %s of %d (%d fitting); passed over: %s",
                    chosen.series_uid if chosen else "none", len(series), len(fitting), ", ".join(skipped) or "-")
    return chosen
