"""Quarantine: a spooled instance that cannot be read back leaves the spool with its reason, and its
study goes to ``error``; every other study goes on.

Layout under the spool root (same file system, so a move is a rename)::

    quarantine/<StudyInstanceUID>/<SOPInstanceUID>.dcm    the file as it was found
    quarantine/<StudyInstanceUID>/<SOPInstanceUID>.json   why, and where it came from

The ledger row is written first (:meth:`aiws.ledger.Ledger.quarantine_instances`), then the file is
moved; :func:`finish_moves` completes a move a crash interrupted. Reasons name no tag value.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset

from aiws.ledger import Ledger, QuarantineItem
from pacs_bridge.spool import fsync_dir, write_durably
from pacs_bridge.uids import validate_uid

LOGGER = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"  # under the spool root
T = TypeVar("T")


def quarantine_root(spool_root: Path) -> Path:
    return spool_root / QUARANTINE_DIR


def _read_header(path: Path) -> Dataset:
    return dcmread(path, stop_before_pixels=True)


def read_back(path: Path, read: Callable[[Path], T] = _read_header) -> tuple[T | None, str]:  # type: ignore[assignment]
    """The header of a spooled file as *read* gives it (data set inflated when deflated), or None and why
    it cannot be read back: the reason names the failure and the exception type, never a value from the file."""
    try:
        return read(path), ""
    except FileNotFoundError:
        return None, "file missing from the spool"
    except OSError as exc:
        return None, f"file unreadable ({exc.strerror or type(exc).__name__})"
    except Exception as exc:  # pydicom raises many types on malformed bytes (zlib.error, struct.error, ...)
        return None, f"data set cannot be parsed ({type(exc).__module__.split('.')[0]} {type(exc).__name__})"


def item_for(root: Path, study_uid: str, series_uid: str, sop_uid: str, original: Path,
             reason: str) -> QuarantineItem:
    """The quarantine record of one instance; its destination when there is a file to move."""
    dest = root / validate_uid(study_uid, "StudyInstanceUID") / f"{validate_uid(sop_uid, 'SOPInstanceUID')}.dcm"
    there = original.exists() or original.is_symlink()
    return QuarantineItem(sop_uid, series_uid, str(original), str(dest) if there else "", reason)


def move_files(items: Sequence[QuarantineItem], study_uid: str) -> None:
    """Move each item's file to its quarantine path and write its reason beside it (durably)."""
    for item in items:
        if not item.path:
            continue
        dest = Path(item.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = Path(item.original_path)
        if src.exists() or src.is_symlink():
            os.replace(src, dest)
            fsync_dir(src.parent)
        note = {"study_uid": study_uid, "series_uid": item.series_uid, "sop_instance_uid": item.sop_instance_uid,
                "original_path": item.original_path, "reason": item.reason}
        write_durably(dest.with_suffix(".json"), json.dumps(note, indent=1).encode(), dest.parent)
        LOGGER.warning("study %s: instance %s quarantined (%s)", study_uid, item.sop_instance_uid, item.reason)


def quarantine(ledger: Ledger, study_uid: str, items: Sequence[QuarantineItem], last_seen: float,
               now: float) -> bool:
    """Record *items* in the ledger (study to ``error``), then move their files. True when in ``error``."""
    in_error = ledger.quarantine_instances(study_uid, items, last_seen, now)
    move_files(items, study_uid)
    return in_error


def finish_moves(ledger: Ledger) -> int:
    """Move the files a crash left in the spool after their quarantine was recorded. Returns how many."""
    moved = 0
    recorded = set(ledger.instance_paths().values())  # sent again and recorded since: not ours to move
    for original, dest in ledger.quarantine_pending_moves().items():
        src, target = Path(original), Path(dest)
        if src.exists() and not target.exists() and original not in recorded:
            study_uid = target.parent.name
            row = next(r for r in ledger.quarantine_of_study(study_uid) if r.original_path == original)
            move_files([QuarantineItem(row.sop_instance_uid, row.series_uid, original, dest, row.reason)], study_uid)
            moved += 1
    return moved


def held_files(spool_root: Path) -> int:
    """How many instance files are in the quarantine (an operator empties it after looking)."""
    root = quarantine_root(spool_root)
    return sum(1 for _ in root.glob("*/*.dcm")) if root.is_dir() else 0
