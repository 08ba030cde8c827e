"""Priors: the patient's latest earlier study, fetched from the source PACS for comparison."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydicom import dcmread

from aiws.ledger import Ledger
from aiws.quarantine import read_back
from models.pipeline import PriorStudy
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, find_series, find_studies, get_study, move_study
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.settings import SenderSettings
from pacs_bridge.uids import is_valid_uid

LOGGER = logging.getLogger(__name__)

RETRIEVE_DIR = "retrieve"  # under the data directory: the C-MOVE inbox shared by the SCP and the workers


def _targets(network_doc: dict[str, Any], calling_ae: str) -> list[QueryTarget]:
    """Query/retrieve-capable sources, the study's sender first."""
    sources = [s for s in network_doc["sources"] if s.get("query_retrieve", "none") != "none"]
    sources.sort(key=lambda s: s["ae_title"] != calling_ae)
    return [QueryTarget(s["ae_title"], s["host"], int(s["port"]), s["query_retrieve"]) for s in sources]


def _stored_results(ledger: Ledger, study_uid: str, pipeline: str) -> tuple[Path, ...]:
    for job in ledger.list_jobs("done", study_uid=study_uid, limit=20):
        if job.pipeline == pipeline:
            return tuple(Path(r.path) for r in ledger.results_of_job(job.id) if r.path and Path(r.path).exists())
    return ()


def _retrieve(target: QueryTarget, settings: SenderSettings, study_uid: str, dest: Path, sop_classes: list[str],
              modality: str, inbox: RetrieveInbox | None) -> list[Path]:
    """The prior's instances in *dest*: by C-GET its *modality* series (only *sop_classes*), or by
    C-MOVE the whole study (a C-MOVE cannot ask for SOP classes; the caller keeps those it needs).

    Raises:
        SendError: the retrieve failed (or C-MOVE without an inbox).
    """
    if target.retrieve != "c-move":
        series = find_series(target, settings, study_uid, modality) if modality else []
        return get_study(target, settings, study_uid, dest, sop_classes, series)
    if inbox is None:
        raise SendError(f"C-MOVE from {target.ae_title}: no retrieve inbox (the service's SCP receives it)")
    inbox.expect(study_uid, settings.ae_title)  # only C-STOREs naming us as Move Originator land there
    try:
        move_study(target, settings, study_uid, settings.ae_title)
        return inbox.take(study_uid, dest)
    finally:
        inbox.forget(study_uid)


def fetch_latest_prior(
    ledger: Ledger, network_doc: dict[str, Any], settings: SenderSettings, study_uid: str,
    pipeline: str, modality: str, sop_classes: list[str], cache_dir: Path, inbox: RetrieveInbox | None = None,
) -> tuple[PriorStudy, ...]:
    """The latest earlier study of the same patient and modality, or nothing.

    Results this pipeline already produced for the prior are passed along; the
    prior's images are fetched into *cache_dir* (never the spool) with C-GET, or with
    C-MOVE to our own AE title (``settings.ae_title``) through *inbox*, as each source is
    configured. A PACS that cannot be reached gives no prior (logged), not a failed job.
    """
    instances = ledger.instances_of_study(study_uid)
    if not instances:
        return ()
    current = dcmread(instances[0].path, stop_before_pixels=True)
    patient_id, date = str(current.get("PatientID", "")), str(current.get("StudyDate", ""))
    if not patient_id:
        return ()
    for target in _targets(network_doc, instances[0].calling_ae):
        try:
            earlier = [s for s in find_studies(target, settings, patient_id, modality)
                       if s.study_uid != study_uid and (not date or s.study_date < date)]
            if not earlier:
                continue
            prior = earlier[-1]
            files = tuple(_retrieve(target, settings, prior.study_uid, cache_dir / prior.study_uid, sop_classes,
                                    modality, inbox))
        except SendError as exc:
            LOGGER.warning("study %s: priors from %s unavailable: %s", study_uid, target.ae_title, exc)
            continue
        series: dict[str, list[Path]] = {}
        wanted = set(sop_classes)
        for path in files:
            header, reason = read_back(path)
            uid = str(header.get("SeriesInstanceUID", "")) if header is not None else ""
            if header is not None and str(header.get("SOPClassUID", "")) in wanted and is_valid_uid(uid):
                series.setdefault(uid, []).append(path)
            else:  # moved along with the study, not an image this pipeline reads (or unreadable)
                if header is None:
                    LOGGER.warning("study %s: prior %s: a retrieved file is left out (%s)", study_uid,
                                   prior.study_uid, reason)
                path.unlink()
        LOGGER.info("study %s: prior %s (%s) from %s", study_uid, prior.study_uid, prior.study_date, target.ae_title)
        return (PriorStudy(prior.study_uid, prior.study_date, {k: tuple(v) for k, v in series.items()},
                           _stored_results(ledger, prior.study_uid, pipeline)),)
    return ()
