"""``aiws dataset pull``: studies and their SEG/SR from a configured PACS into a ``dicom-seg`` dataset folder.

A Study Root C-FIND at STUDY level (``--query KEY=VALUE`` keys, or one query per Accession Number of a file) finds
the studies; each is then retrieved whole, images, SEG and SR together, as the source's ``query_retrieve`` says,
through the retrieve path the priors use (:func:`aiws.priors._retrieve`): C-GET over our own association, or
C-MOVE to our AE title, received by the running service's SCP into the retrieve inbox (the PACS must know our
AE title, host and port, as for priors).

Layout written: ``OUT/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (the ``dicom-seg`` reader takes any tree), with
``OUT/pull-manifest.json``: per study ``partial`` (written before its retrieve starts) or ``complete`` with its
counts. A rerun skips complete studies and retrieves a partial one again whole (the files of an instance are
replaced, never duplicated), so an interrupted pull is completed by running it again.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    BasicTextSRStorage,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    EncapsulatedPDFStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from aiws.config import Config
from aiws.errors import ConfigError
from aiws.logsetup import CONSOLE
from aiws.netsettings import sender_settings
from aiws.priors import RETRIEVE_DIR, _retrieve
from pacs_bridge.errors import SendError
from pacs_bridge.qr import QueryTarget, StudyHit, query_studies
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.spool import write_durably

LOGGER = logging.getLogger(__name__)

MANIFEST = "pull-manifest.json"
#: SOP classes offered for C-GET: a PACS such as Orthanc stops a study's C-GET at the first object of a class
#: not offered, so the classes a labelled study holds beside its images (SEG, SR, our summaries) are all here.
SOP_CLASSES: list[str] = [CTImageStorage, EnhancedCTImageStorage, MRImageStorage, EnhancedMRImageStorage,
               DigitalMammographyXRayImageStorageForPresentation, DigitalMammographyXRayImageStorageForProcessing,
               SegmentationStorage, ComprehensiveSRStorage, Comprehensive3DSRStorage, EnhancedSRStorage,
               BasicTextSRStorage, SecondaryCaptureImageStorage, EncapsulatedPDFStorage,
               GrayscaleSoftcopyPresentationStateStorage, KeyObjectSelectionDocumentStorage]


@dataclass(frozen=True)
class PullRequest:
    """What to pull: from the source AE title *source*, the studies matching *query* (keyword -> value) or
    those of the Accession Numbers in *accessions*, into *out*."""

    source: str
    out: Path
    query: tuple[tuple[str, str], ...] = ()
    accessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class PullSummary:
    studies: int
    fetched: int
    skipped: int
    instances: int


def parse_query(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` items as (DICOM keyword, value) pairs.

    Raises:
        ConfigError: an item without ``=`` or whose key is not a DICOM keyword (the message names the key only).
    """
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or tag_for_keyword(key.strip()) is None:
            raise ConfigError(f"--query {key.strip() or '(empty)'}: expected KEY=VALUE with KEY a DICOM keyword "
                              "(e.g. ModalitiesInStudy=CT, StudyDate=20240101-20241231)")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def read_accessions(path: Path) -> tuple[str, ...]:
    """Accession Numbers of *path*, one a line (blank lines and lines starting with ``#`` ignored).

    Raises:
        ConfigError: the file cannot be read or lists none.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"--accessions {path.name}: cannot be read ({type(exc).__name__})") from None
    values = tuple(dict.fromkeys(s.strip() for s in lines if s.strip() and not s.strip().startswith("#")))
    if not values:
        raise ConfigError(f"--accessions {path.name}: no Accession Number in the file")
    return values


def _target(config: Config, name: str) -> QueryTarget:
    for source in config.dicom.sources:
        if source.ae_title == name:
            if source.query_retrieve == "none" or source.host is None or source.port is None:
                raise ConfigError(f"dicom.sources {name}: query_retrieve is none; set c-get or c-move, host and port")
            return QueryTarget(source.ae_title, source.host, int(source.port), source.query_retrieve)
    known = ", ".join(s.ae_title for s in config.dicom.sources) or "none"
    raise ConfigError(f"--source {name}: not one of dicom.sources (configured: {known})")


def _load_manifest(out: Path) -> dict[str, dict[str, object]]:
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["studies"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{out.name}/{MANIFEST}: unreadable ({type(exc).__name__}); remove it to pull again") from None


def _save_manifest(out: Path, source: str, studies: dict[str, dict[str, object]]) -> None:
    doc = {"source": source, "studies": studies}
    write_durably(out / MANIFEST, json.dumps(doc, indent=2, sort_keys=True).encode("utf-8"), out)


def _modalities(files: list[Path]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in files:
        try:
            counts[str(dcmread(path, stop_before_pixels=True).get("Modality", "?"))] += 1
        except (InvalidDicomError, OSError, EOFError) as exc:
            LOGGER.warning("pulled file %s unreadable (%s)", path.name, type(exc).__name__)
            counts["unreadable"] += 1
    return counts


def _find(target: QueryTarget, config: Config, request: PullRequest) -> list[StudyHit]:
    settings = sender_settings(config, config.dicom.ae_title)
    queries = [dict(request.query)] if request.query else [{"AccessionNumber": a} for a in request.accessions]
    hits: dict[str, StudyHit] = {}
    for keys in queries:
        for hit in query_studies(target, settings, keys):
            hits.setdefault(hit.study_uid, hit)
    return list(hits.values())


def pull(config: Config, request: PullRequest) -> PullSummary:
    """Find and retrieve the studies of *request* into ``request.out``, skipping those the manifest lists as
    complete; one console line per study with its counts.

    Raises:
        ConfigError: unknown source, a source without query/retrieve, an unreadable manifest.
        SendError: the C-FIND failed, or a retrieve failed (the studies before it stay complete; rerun to go on).
    """
    target = _target(config, request.source)
    settings = sender_settings(config, config.dicom.ae_title)
    out = request.out
    out.mkdir(parents=True, exist_ok=True)
    studies = _load_manifest(out)
    hits = _find(target, config, request)
    CONSOLE.info(f"{target.ae_title}: {len(hits)} stud{'y' if len(hits) == 1 else 'ies'} match; "
                 f"retrieve by {target.retrieve}")
    inbox = RetrieveInbox(config.storage.data_dir / RETRIEVE_DIR) if target.retrieve == "c-move" else None
    fetched = skipped = instances = 0
    for n, hit in enumerate(hits, start=1):
        entry = studies.get(hit.study_uid, {})
        if entry.get("state") == "complete":
            skipped += 1
            CONSOLE.info(f"[{n}/{len(hits)}] study {hit.study_uid}: complete already ({entry.get('instances')} "
                         "instances), skipped")
            continue
        studies[hit.study_uid] = {"state": "partial", "expected": hit.n_instances}
        _save_manifest(out, target.ae_title, studies)
        files = _retrieve(target, settings, hit.study_uid, out / hit.study_uid, SOP_CLASSES, "", inbox)
        if hit.n_instances is not None and len(files) < hit.n_instances:
            raise SendError(f"study {hit.study_uid}: {len(files)} of {hit.n_instances} instances retrieved; "
                            "rerun the pull to complete it")
        counts = _modalities(files)
        studies[hit.study_uid] = {"state": "complete", "expected": hit.n_instances, "instances": len(files),
                                  "modalities": dict(sorted(counts.items()))}
        _save_manifest(out, target.ae_title, studies)
        fetched += 1
        instances += len(files)
        listed = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        CONSOLE.info(f"[{n}/{len(hits)}] study {hit.study_uid}: {len(files)} instances ({listed})")
    LOGGER.info("pull from %s: %d studies fetched, %d complete already", target.ae_title, fetched, skipped)
    return PullSummary(len(hits), fetched, skipped, instances)
