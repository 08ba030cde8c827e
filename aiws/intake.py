"""Where the SCP's received instances enter the ledger, and the start-up recovery of the spool."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from pydicom.dataset import Dataset

from aiws.ledger import InstanceRefused, InstanceRow, Ledger, StudyLabels
from aiws.quarantine import finish_moves, item_for, quarantine, quarantine_root, read_back
from pacs_bridge.errors import InvalidInstance
from pacs_bridge.inspect import InstanceInfo, study_label
from pacs_bridge.scp import AssociationRecord
from pacs_bridge.spool import Spool, SpooledFile
from pacs_bridge.status import StoreStatus

LOGGER = logging.getLogger(__name__)


class LedgerListener:
    """Implements :class:`pacs_bridge.scp.StoreListener` on the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None:
        """Record a spooled instance (durable when it returns).

        Raises:
            InvalidInstance: the SOP Instance UID is held under another study or series
                (``DUPLICATE_SOP_INSTANCE``; the file just written is removed), or the study was
                purged between the write and the record (``PROCESSING_FAILURE``: send again).
                The refusal is audited (``instance refused``).
        """
        row = InstanceRow(
            sop_instance_uid=info.sop_instance_uid,
            study_uid=info.study_instance_uid,
            series_uid=info.series_instance_uid,
            sop_class_uid=info.sop_class_uid,
            modality=info.modality,
            transfer_syntax=info.transfer_syntax_uid,
            path=str(spooled.path),
            size_bytes=spooled.size_bytes,
            calling_ae=calling_ae,
            peer_ip=peer_ip,
            received_at=time.time(),
        )
        try:
            self._ledger.record_instance(row, require_file=True,
                                         labels=StudyLabels(info.accession_number, info.study_description))
        except InstanceRefused as exc:
            if exc.kind == "conflict" and spooled.created:  # nothing refers to the file just written
                spooled.path.unlink(missing_ok=True)
            self._ledger.record_refusal(exc.kind, {
                "sop_instance_uid": info.sop_instance_uid, "study_uid": info.study_instance_uid,
                "series_uid": info.series_instance_uid, "calling_ae": calling_ae, "reason": exc.reason})
            status = StoreStatus.DUPLICATE_SOP_INSTANCE if exc.kind == "conflict" else StoreStatus.PROCESSING_FAILURE
            raise InvalidInstance(status, exc.reason) from None

    def association_ended(self, record: AssociationRecord) -> None:
        self._ledger.record_association(dataclasses.asdict(record))


def recover_spool(spool: Spool, ledger: Ledger) -> int:
    """Register spooled files the ledger lacks (a crash between fsync+rename and the ledger commit).

    A file that cannot be read back, or whose SOP Instance UID the ledger holds under another
    path (left by a version that dropped such instances silently), is quarantined and its study
    goes to ``error``; quarantine moves a crash interrupted are finished. Returns the number of
    instances recovered.
    """
    finish_moves(ledger)
    known = ledger.instance_paths()
    recovered, refused = 0, 0
    for study, series, sop, path in spool.iter_files():
        if known.get(sop) == str(path):
            continue
        header, reason = read_back(path) if sop not in known else (None, "SOP instance held under another study")
        if header is None:
            item = item_for(quarantine_root(spool.root), study, series, sop, path, reason)
            quarantine(ledger, study, [item], float("inf"), time.time())
            refused += 1
            continue
        ledger.record_instance(_recovered_row(study, series, sop, path, header), labels=StudyLabels(
            study_label(header, "AccessionNumber"), study_label(header, "StudyDescription")))
        recovered += 1
    if recovered:
        LOGGER.warning("recovered %d spooled instances missing from the ledger", recovered)
    if refused:
        LOGGER.warning("quarantined %d spooled instances that cannot be read back or conflict", refused)
    return recovered


def _recovered_row(study: str, series: str, sop: str, path: Path, ds: Dataset) -> InstanceRow:
    return InstanceRow(
        sop_instance_uid=sop, study_uid=study, series_uid=series,
        sop_class_uid=str(ds.get("SOPClassUID", "")), modality=str(ds.get("Modality", "")),
        transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")), path=str(path),
        size_bytes=path.stat().st_size, calling_ae="(recovered)", peer_ip="",
        received_at=path.stat().st_mtime,
    )
