"""Where the SCP's received instances enter the ledger, and the start-up recovery of the spool."""
from __future__ import annotations

import dataclasses
import logging
import time

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from aiws.ledger import InstanceRow, Ledger
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.scp import AssociationRecord
from pacs_bridge.spool import Spool, SpooledFile

LOGGER = logging.getLogger(__name__)


class LedgerListener:
    """Implements :class:`pacs_bridge.scp.StoreListener` on the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def instance_stored(self, info: InstanceInfo, spooled: SpooledFile, calling_ae: str, peer_ip: str) -> None:
        self._ledger.record_instance(
            InstanceRow(
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
        )

    def association_ended(self, record: AssociationRecord) -> None:
        self._ledger.record_association(dataclasses.asdict(record))


def recover_spool(spool: Spool, ledger: Ledger) -> int:
    """Register spooled files the ledger lacks (a crash between fsync+rename and the ledger commit).

    Returns the number of instances recovered.
    """
    known = ledger.known_instance_uids()
    recovered = 0
    for study, series, sop, path in spool.iter_files():
        if sop in known:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            LOGGER.error("spool file %s unreadable, left in place: %s", path, exc)
            continue
        ledger.record_instance(
            InstanceRow(
                sop_instance_uid=sop, study_uid=study, series_uid=series,
                sop_class_uid=str(ds.get("SOPClassUID", "")), modality=str(ds.get("Modality", "")),
                transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")), path=str(path),
                size_bytes=path.stat().st_size, calling_ae="(recovered)", peer_ip="",
                received_at=path.stat().st_mtime,
            )
        )
        recovered += 1
    if recovered:
        LOGGER.warning("recovered %d spooled instances missing from the ledger", recovered)
    return recovered
