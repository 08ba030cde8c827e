"""The inbox for C-MOVE retrieves: instances a PACS sends because we asked for them.

With C-MOVE the PACS opens its own association to our storage SCP and C-STOREs the study there.
Those instances are a prior for comparison, not a new study to route. The retriever marks the
study as expected (a folder ``<root>/<StudyInstanceUID>/`` holding the AE title that issues the
C-MOVE), the SCP writes an instance of an expected study into that folder instead of the spool only
when its C-STORE carries that AE title as Move Originator (PS3.7 9.1.1.1.8): a C-STORE without it is
an ordinary store, spooled and routed even while the study is expected. The retriever takes the
folder when the C-MOVE has finished: the PACS sends the
final C-MOVE response only after every C-STORE has been answered, and the SCP answers only once
the file is durable. A folder on disk works across processes: the SCP runs in the service,
retrieves run in job workers.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pacs_bridge.spool import fsync_dir, write_durably
from pacs_bridge.uids import is_valid_uid

_ORIGINATOR_FILE = "move-originator"


class RetrieveInbox:
    """Expected C-MOVE studies under *root* (one folder each)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, study_uid: str) -> Path:
        if not is_valid_uid(study_uid):
            raise ValueError(f"study {study_uid!r}: not a valid DICOM UID")
        return self.root / study_uid

    def expect(self, study_uid: str, originator_ae: str) -> Path:
        """Mark *study_uid* as expected from a C-MOVE that *originator_ae* issues; its instances
        (C-STOREs naming that AE title as Move Originator) will land in the returned folder."""
        if not originator_ae.strip():
            raise ValueError(f"study {study_uid}: a C-MOVE is expected from a named AE title")
        folder = self._folder(study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        write_durably(folder / _ORIGINATOR_FILE, originator_ae.strip().encode("ascii"), folder)
        return folder

    def claims(self, study_uid: str, move_originator: str, our_ae: str) -> Path | None:
        """The folder for an arriving instance of *study_uid*, or None when it is an ordinary store:
        the study is not expected, or the C-STORE carries no Move Originator or another one than
        the C-MOVE's (*our_ae* when the folder does not say)."""
        if not move_originator or not is_valid_uid(study_uid):
            return None
        folder = self._folder(study_uid)
        if not folder.is_dir():
            return None
        marker = folder / _ORIGINATOR_FILE
        expected = marker.read_text("ascii").strip() if marker.exists() else our_ae
        return folder if move_originator.strip() == expected else None

    def store(self, folder: Path, sop_instance_uid: str, data: bytes) -> Path:
        """Write one retrieved instance durably into *folder* (a path :meth:`claims` gave)."""
        path = folder / f"{sop_instance_uid}.dcm"
        write_durably(path, data, folder)
        return path

    def take(self, study_uid: str, dest: Path) -> list[Path]:
        """Move what arrived for *study_uid* to *dest* (replacing it) and stop expecting the study."""
        folder = self._folder(study_uid)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            return []
        os.rename(folder, dest)
        fsync_dir(dest.parent)
        (dest / _ORIGINATOR_FILE).unlink(missing_ok=True)
        return sorted(p for p in dest.iterdir() if p.suffix == ".dcm")

    def forget(self, study_uid: str) -> None:
        """Stop expecting *study_uid* and drop anything that arrived for it."""
        shutil.rmtree(self._folder(study_uid), ignore_errors=True)
