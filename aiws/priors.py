"""Priors: the patient's latest earlier study, fetched from the source PACS for comparison."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydicom import dcmread

from aiws.ledger import Ledger
from models.pipeline import PriorStudy
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, find_studies, get_study
from pacs_bridge.settings import SenderSettings
from pacs_bridge.uids import is_valid_uid

LOGGER = logging.getLogger(__name__)


def _targets(network_doc: dict[str, Any], calling_ae: str) -> list[QueryTarget]:
    """Query/retrieve-capable sources, the study's sender first."""
    sources = [s for s in network_doc["sources"] if s.get("query_retrieve", "none") != "none"]
    sources.sort(key=lambda s: s["ae_title"] != calling_ae)
    return [QueryTarget(s["ae_title"], s["host"], int(s["port"])) for s in sources]


def _stored_results(ledger: Ledger, study_uid: str, pipeline: str) -> tuple[Path, ...]:
    for job in ledger.list_jobs("done", study_uid=study_uid, limit=20):
        if job.pipeline == pipeline:
            return tuple(Path(r.path) for r in ledger.results_of_job(job.id) if r.path and Path(r.path).exists())
    return ()


def fetch_latest_prior(
    ledger: Ledger, network_doc: dict[str, Any], settings: SenderSettings, study_uid: str,
    pipeline: str, modality: str, sop_classes: list[str], cache_dir: Path,
) -> tuple[PriorStudy, ...]:
    """The latest earlier study of the same patient and modality, or nothing.

    Results this pipeline already produced for the prior are passed along; the
    prior's images are fetched with C-GET into *cache_dir* (never the spool).
    A PACS that cannot be reached gives no prior (logged), not a failed job.
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
            files = tuple(get_study(target, settings, prior.study_uid, cache_dir / prior.study_uid, sop_classes))
        except SendError as exc:
            LOGGER.warning("study %s: priors from %s unavailable: %s", study_uid, target.ae_title, exc)
            continue
        series: dict[str, list[Path]] = {}
        for path in files:
            uid = str(dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
            if is_valid_uid(uid):
                series.setdefault(uid, []).append(path)
        LOGGER.info("study %s: prior %s (%s) from %s", study_uid, prior.study_uid, prior.study_date, target.ae_title)
        return (PriorStudy(prior.study_uid, prior.study_date, {k: tuple(v) for k, v in series.items()},
                           _stored_results(ledger, prior.study_uid, pipeline)),)
    return ()
