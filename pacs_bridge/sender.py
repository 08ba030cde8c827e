"""C-STORE SCU and C-ECHO to destinations. Retries and dead-lettering live in the caller."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config, build_context
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from pacs_bridge.ae import scu_ae
from pacs_bridge.errors import SendError
from pacs_bridge.settings import Destination, SenderSettings
from pacs_bridge.status import STORED, EchoStatus
from pacs_bridge.tls import client_context

LOGGER = logging.getLogger(__name__)

_MAX_CONTEXTS = 128


@dataclass(frozen=True)
class SendReport:
    destination: str
    sent: int
    seconds: float


def _associate(ae: AE, dest: Destination, settings: SenderSettings, contexts: list) -> Association:  # type: ignore[type-arg]
    tls_args = None
    if dest.tls:
        if settings.tls is None:
            raise SendError(f"destination {dest.name}: TLS requested but no TLS settings configured")
        if dest.verify and settings.tls.ca_file is None:
            raise SendError(f"destination {dest.name}: TLS without a ca_file to verify the peer against; "
                            "set [dicom.tls] ca_file, or verify = false on the destination")
        tls_args = (client_context(settings.tls, verify=dest.verify), dest.host)
    assoc = ae.associate(
        dest.host, dest.port, ae_title=dest.ae_title, contexts=contexts, tls_args=tls_args
    )
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "refused or aborted (is the destination up?)"
        if dest.tls and not assoc.is_rejected:
            why = "refused or aborted (is the destination up, and does its certificate verify?)"
        raise SendError(f"destination {dest.name} ({dest.ae_title}@{dest.host}:{dest.port}): association {why}")
    return assoc


def echo(dest: Destination, settings: SenderSettings) -> float:
    """C-ECHO *dest*; return the round trip in milliseconds.

    Raises:
        SendError: association failed or the status is not success.
    """
    t0 = time.perf_counter()
    assoc = _associate(scu_ae(settings), dest, settings, [build_context(Verification)])
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    code = int(getattr(status, "Status", -1)) if status else -1
    if code != EchoStatus.SUCCESS:
        raise SendError(f"destination {dest.name}: C-ECHO status {code:#06x}" if code >= 0 else
                        f"destination {dest.name}: no C-ECHO response")
    return (time.perf_counter() - t0) * 1000.0


def _identity(path: Path) -> tuple[str, str, str]:
    """(SOP Class UID, SOP Instance UID, Transfer Syntax UID) of a Part 10 file, from its File Meta group
    (the data set's header when the group lacks them)."""
    meta = read_file_meta_info(path)
    sop_class, sop_instance = meta.get("MediaStorageSOPClassUID"), meta.get("MediaStorageSOPInstanceUID")
    if not (sop_class and sop_instance):
        header = dcmread(path, stop_before_pixels=True)
        sop_class, sop_instance = header.SOPClassUID, header.SOPInstanceUID
    return str(sop_class), str(sop_instance), str(meta.TransferSyntaxUID)


def send_files(dest: Destination, paths: Sequence[Path], settings: SenderSettings) -> SendReport:
    """C-STORE every file in *paths* to *dest* over one association.

    Raises:
        SendError: association failed, or any instance got a non-success status
            (the caller retries the whole set; a PACS stores duplicates idempotently).
    """
    t0 = time.perf_counter()
    # Each file is read twice at most in part: its File Meta here for the contexts, then streamed from disk by
    # pynetdicom without decoding it (chunked send), where a full dcmread per file used to come on top.
    _config.STORE_SEND_CHUNKED_DATASET = True
    identities = [_identity(p) for p in paths]
    pairs = sorted({(sop_class, ts) for sop_class, _, ts in identities})
    by_class: dict[str, list[str]] = {}
    for sop_class, ts in pairs:
        by_class.setdefault(sop_class, []).append(ts)
    if len(by_class) > _MAX_CONTEXTS:
        raise SendError(f"destination {dest.name}: {len(by_class)} SOP classes in one send, max {_MAX_CONTEXTS}")
    contexts = [build_context(c, ts) for c, ts in by_class.items()]
    assoc = _associate(scu_ae(settings), dest, settings, contexts)
    failures: list[str] = []
    try:
        for path, (_, sop_instance, _) in zip(paths, identities, strict=True):
            status = assoc.send_c_store(path)
            code = int(getattr(status, "Status", -1)) if status else -1
            if code not in STORED:  # success, or a warning: stored all the same
                failures.append(f"{sop_instance}: status {code:#06x}" if code >= 0 else
                                f"{sop_instance}: no response")
                if not assoc.is_established:
                    break
    finally:
        if assoc.is_established:
            assoc.release()
    if failures:
        raise SendError(f"destination {dest.name}: {len(failures)} of {len(paths)} failed: {failures[0]}")
    seconds = time.perf_counter() - t0
    LOGGER.info("sent %d instances to %s in %.2f s", len(paths), dest.name, seconds)
    return SendReport(dest.name, len(paths), seconds)
