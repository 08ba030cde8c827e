"""Query/retrieve SCU: find a patient's earlier studies (C-FIND) and fetch one (C-GET or C-MOVE).

Used to get priors (an earlier chest CT for nodule growth). C-GET brings the
instances over the same association into a folder outside the spool. C-MOVE asks the
PACS to send them to our own storage SCP (the PACS must know our AE title, host and
port), which puts the instances of an expected study into the retrieve inbox
(:mod:`pacs_bridge.retrieve`) instead of the spool. Either way a retrieved prior
never enters the ledger as a new study to be routed.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset
from pynetdicom import build_role, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs_bridge.ae import scu_ae
from pacs_bridge.contexts import STORAGE_TRANSFER_SYNTAXES
from pacs_bridge.errors import InvalidInstance, SendError
from pacs_bridge.inspect import InstanceInfo
from pacs_bridge.scp import failure_response, store_received, write_failure
from pacs_bridge.settings import SenderSettings
from pacs_bridge.spool import write_durably
from pacs_bridge.status import PENDING, RETRIEVED, QueryRetrieveStatus, StoreStatus
from pacs_bridge.uids import is_valid_uid

LOGGER = logging.getLogger(__name__)

@dataclass(frozen=True)
class QueryTarget:
    """A PACS that answers C-FIND and C-GET or C-MOVE (Study Root); *retrieve*: ``c-get`` or ``c-move``."""

    ae_title: str
    host: str
    port: int
    retrieve: str = "c-get"


@dataclass(frozen=True)
class StudyMatch:
    study_uid: str
    study_date: str
    study_time: str
    modalities: tuple[str, ...]
    description: str


def _query(level: str, **keywords: str) -> Dataset:
    """A query/retrieve identifier at *level* with the given attributes ("" = return this attribute)."""
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keywords.items():
        setattr(query, keyword, value)
    return query


def _find(target: QueryTarget, settings: SenderSettings, query: Dataset) -> list[Dataset]:
    """The identifiers a Study Root C-FIND of *query* matches.

    Raises:
        SendError: association or C-FIND failure.
    """
    ae = scu_ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        raise SendError(f"C-FIND to {target.ae_title}@{target.host}:{target.port}: association failed")
    found: list[Dataset] = []
    try:
        for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in PENDING and ident is not None:
                found.append(ident)
            elif code != QueryRetrieveStatus.SUCCESS:
                raise SendError(f"C-FIND to {target.ae_title}: status {code:#06x}")
    finally:
        assoc.release()
    return found


def find_studies(target: QueryTarget, settings: SenderSettings, patient_id: str,
                 modality: str | None = None) -> list[StudyMatch]:
    """Studies of *patient_id* (optionally with a series of *modality*), oldest first.

    Raises:
        SendError: association or C-FIND failure.
    """
    query = _query("STUDY", PatientID=patient_id, StudyInstanceUID="", StudyDate="", StudyTime="",
                   StudyDescription="", ModalitiesInStudy=modality or "")
    matches: list[StudyMatch] = []
    for ident in _find(target, settings, query):
        uid = str(ident.get("StudyInstanceUID", ""))
        if is_valid_uid(uid):
            mods = ident.get("ModalitiesInStudy", "")
            matches.append(StudyMatch(uid, str(ident.get("StudyDate", "")), str(ident.get("StudyTime", "")),
                                      tuple(mods) if not isinstance(mods, str) else (mods,) if mods else (),
                                      str(ident.get("StudyDescription", ""))))
    LOGGER.info("C-FIND on %s: %d studies", target.ae_title, len(matches))
    return sorted(matches, key=lambda m: (m.study_date, m.study_time))


def find_series(target: QueryTarget, settings: SenderSettings, study_uid: str, modality: str) -> list[str]:
    """Series UIDs of *study_uid* with *modality* (a prior is fetched series by series: a PACS such as
    Orthanc stops a whole-study C-GET at the first object whose SOP class we did not offer, e.g. an
    earlier SR or SEG of ours in that study).

    Raises:
        SendError: association or C-FIND failure.
    """
    query = _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", Modality=modality)
    uids = [str(i.get("SeriesInstanceUID", "")) for i in _find(target, settings, query)]
    return [u for u in uids if is_valid_uid(u)]


def get_study(target: QueryTarget, settings: SenderSettings, study_uid: str, out_dir: Path,
              sop_classes: Sequence[str], series_uids: Sequence[str] = ()) -> list[Path]:
    """C-GET every instance of *study_uid* whose SOP class is in *sop_classes* into *out_dir*; only the
    series *series_uids* when given (one C-GET per series, on one association).

    Raises:
        SendError: association failure or a failed/incomplete retrieve.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    received: list[Path] = []

    def keep(event: Event, fp: BinaryIO, info: InstanceInfo, start: int, header: bytes) -> None:
        path = out_dir / f"{info.sop_instance_uid}.dcm"  # a UID checked by store_received
        fp.seek(start)
        write_durably(path, header + fp.read(), out_dir)
        received.append(path)

    def on_store(event: Event) -> int | Dataset:  # the storage SCP's path: checked, durable, then answered
        try:
            store_received(event, keep, 0, target.ae_title)
        except InvalidInstance as exc:
            LOGGER.warning("C-GET from %s: instance refused (%s): %s", target.ae_title, exc.status.name, exc.reason)
            return failure_response(exc.status, exc.reason)
        except OSError as exc:
            return failure_response(*write_failure(exc))
        return int(StoreStatus.SUCCESS)

    ae = scu_ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, list(STORAGE_TRANSFER_SYNTAXES[:4]))
        roles.append(build_role(sop_class, scp_role=True))
    queries = [_query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=u) for u in series_uids] \
        or [_query("STUDY", StudyInstanceUID=study_uid)]
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not assoc.is_established:
        raise SendError(f"C-GET from {target.ae_title}@{target.host}:{target.port}: association failed")
    final = int(QueryRetrieveStatus.SUCCESS)
    try:
        for query in queries:
            last = -1
            for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                last = int(getattr(status, "Status", -1)) if status else -1
            if last not in RETRIEVED:
                final = last
                break
            final = max(final, last)
    finally:
        assoc.release()
    if final not in RETRIEVED:
        for p in received:
            p.unlink(missing_ok=True)
        raise SendError(f"C-GET of study {study_uid} from {target.ae_title}: final status {final:#06x}")
    LOGGER.info("C-GET study %s from %s: %d instances", study_uid, target.ae_title, len(received))
    return sorted(received, key=os.fspath)


def move_study(target: QueryTarget, settings: SenderSettings, study_uid: str, destination_ae: str) -> int:
    """C-MOVE *study_uid* to *destination_ae* (normally our own SCP); returns the completed sub-operations.

    Returns when the PACS has sent its final response, i.e. after every C-STORE was answered.

    Raises:
        SendError: association failure, or a final status other than success / some sub-operations failed.
    """
    ae = scu_ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    query = _query("STUDY", StudyInstanceUID=study_uid)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        raise SendError(f"C-MOVE from {target.ae_title}@{target.host}:{target.port}: association failed")
    final, completed, failed = -1, 0, 0
    try:
        for status, _ in assoc.send_c_move(query, destination_ae, StudyRootQueryRetrieveInformationModelMove):
            if not status:
                continue
            final = int(getattr(status, "Status", -1))
            completed = int(status.get("NumberOfCompletedSuboperations", completed) or 0)
            failed = int(status.get("NumberOfFailedSuboperations", failed) or 0)
    finally:
        assoc.release()
    if final not in RETRIEVED:
        raise SendError(f"C-MOVE of study {study_uid} from {target.ae_title} to {destination_ae}: "
                        f"final status {final:#06x}")
    if final == QueryRetrieveStatus.SUB_OPERATIONS_WITH_FAILURES:
        LOGGER.warning("C-MOVE study %s from %s: %d sub-operation(s) failed", study_uid, target.ae_title, failed)
    LOGGER.info("C-MOVE study %s from %s to %s: %d instances", study_uid, target.ae_title, destination_ae, completed)
    return completed


@dataclass(frozen=True)
class StudyHit:
    """A study a query matched; *n_instances*: Number of Study Related Instances, None where not given."""

    study_uid: str
    n_instances: int | None


def query_studies(target: QueryTarget, settings: SenderSettings, keys: dict[str, str]) -> list[StudyHit]:
    """Studies matching *keys* (DICOM keyword -> matching value, PS3.4 C.2.2.2: wildcards, date ranges) by a
    Study Root C-FIND at STUDY level, in the order the PACS answered.

    Raises:
        SendError: association or C-FIND failure.
    """
    query = _query("STUDY", **{"StudyInstanceUID": "", "NumberOfStudyRelatedInstances": "", **keys})
    hits: list[StudyHit] = []
    for ident in _find(target, settings, query):
        uid = str(ident.get("StudyInstanceUID", ""))
        count = ident.get("NumberOfStudyRelatedInstances", None)
        if is_valid_uid(uid):
            hits.append(StudyHit(uid, int(count) if count not in (None, "") else None))
    LOGGER.info("C-FIND on %s: %d studies", target.ae_title, len(hits))
    return hits
