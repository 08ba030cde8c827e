"""Running one job: routed series in, durable result files and queued sends out."""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from aiws.config import Config
from aiws.headerstore import load_headers
from aiws.ledger import JobRow, Ledger, NewResult
from aiws.netconfig import NetworkStore
from aiws.netsettings import sender_settings
from aiws.pipelines import PIPELINES
from aiws.priors import RETRIEVE_DIR, fetch_latest_prior
from imaging.backend import ArrayBackend
from models.errors import ModelError, RetryLater
from models.pipeline import Pipeline, PipelineRequest
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.scrub import describe_error, error_trace, patient_values
from pacs_bridge.spool import fsync_dir

LOGGER = logging.getLogger(__name__)

_MAX_RETRY_DELAY_S = 600.0


@dataclass
class JobRunner:
    """Runs jobs in one worker process; pipelines are built once and reused (sessions stay warm)."""

    config: Config
    ledger: Ledger
    network: NetworkStore
    backend: ArrayBackend  # selected once at the worker's start-up

    def __post_init__(self) -> None:
        self._pipelines: dict[str, Pipeline] = {}
        self.outbox = self.config.storage.data_dir / "outbox"

    def pipeline(self, name: str) -> Pipeline:
        if name not in self._pipelines:
            self._pipelines[name] = PIPELINES[name](self.config, self.backend)
        return self._pipelines[name]

    def run(self, job: JobRow) -> None:
        """Run *job* and record the outcome in the ledger. Never raises for pipeline errors.

        What is stored and logged of an error is :func:`pacs_bridge.scrub.describe_error` (its type and a
        message without the study's identifying values or anything that looks like a tag value).
        """
        t0 = time.time()
        try:
            results, summary = self._execute(job)
        except RetryLater as exc:
            delay = min(self.config.workers.retry_seconds * 2 ** min(job.attempts - 1, 6), _MAX_RETRY_DELAY_S)
            error = self._describe(job, exc)
            LOGGER.warning("job %d (%s) will be retried in %.0f s: %s", job.id, job.pipeline, delay, error)
            self.ledger.fail_job(job.id, f"retrying: {error}", time.time() + delay, time.time())
            return
        except ModelError as exc:
            error = self._describe(job, exc)
            LOGGER.error("job %d (%s) study %s failed: %s", job.id, job.pipeline, job.study_uid, error)
            self.ledger.fail_job(job.id, error, None, time.time())
            return
        except Exception as exc:  # a pipeline bug: keep where it happened, retry a few times, then fail
            error = f"{self._describe(job, exc)}\n{error_trace(exc)}"
            LOGGER.error("job %d (%s) study %s crashed: %s", job.id, job.pipeline, job.study_uid, error)
            retry = job.attempts < self.config.workers.max_job_tries
            retry_at = time.time() + self.config.workers.retry_seconds if retry else None
            self.ledger.fail_job(job.id, error, retry_at, time.time())
            return
        sends = self._sends(job, results)
        sent = self.ledger.finish_job(job.id, results, summary, sends, time.time())
        LOGGER.info(
            "job %d (%s) study %s done in %.1f s: %d objects%s",
            job.id, job.pipeline, job.study_uid, time.time() - t0, len(results),
            "" if sent else " (superseded by a newer run, not sent)",
        )

    def _describe(self, job: JobRow, exc: BaseException) -> str:
        """The error as it may be stored and shown: scrubbed of the study's identifying values."""
        firsts: dict[str, Path] = {}
        for inst in self.ledger.instances_of_study(job.study_uid):
            firsts.setdefault(inst.series_uid, Path(inst.path))
        return describe_error(exc, patient_values(firsts.values()))

    def _execute(self, job: JobRow) -> tuple[list[NewResult], dict[str, object]]:
        instances = self.ledger.instances_of_study(job.study_uid)
        series = {
            uid: tuple(Path(i.path) for i in instances if i.series_uid == uid) for uid in job.series_uids
        }
        out_dir = self.outbox / str(job.id)
        if out_dir.exists():  # a previous attempt's partial output
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        pipeline = self.pipeline(job.pipeline)
        priors = ()
        if pipeline.prior_spec is not None:
            settings = sender_settings(self.config, self.network.policy().ae_title)
            priors = fetch_latest_prior(
                self.ledger, self.network.doc(), settings, job.study_uid, job.pipeline,
                pipeline.prior_spec.modality, list(pipeline.prior_spec.sop_classes),
                self.config.storage.data_dir / "priors", RetrieveInbox(self.config.storage.data_dir / RETRIEVE_DIR),
            )
        request = PipelineRequest(
            study_uid=job.study_uid,
            series=series,
            out_dir=out_dir,
            uid_root=self.config.imaging.uid_root,
            manufacturer=self.config.imaging.manufacturer,
            institution_name=self.config.imaging.institution_name,
            priors=priors,
            headers=load_headers(self.config.storage.data_dir, job.study_uid,
                                 [p for files in series.values() for p in files]),  # read once, at completion
        )
        output = pipeline.run(request)
        results = []
        unsaved = False
        for item in output.files:
            if item.sop_instance_uid and item.sop_class_uid and item.series_instance_uid:
                # written and saved by imaging's writers (write, fsync, rename, fsync dir): UIDs as written
                results.append(NewResult(item.kind, item.sop_instance_uid, item.series_instance_uid,
                                         item.sop_class_uid, str(item.path)))
                continue
            unsaved = True  # a pipeline that saved on its own: make it durable and read its UIDs
            _fsync_file(item.path)
            ds = dcmread(item.path, stop_before_pixels=True)
            results.append(NewResult(item.kind, str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID),
                                     str(ds.SOPClassUID), str(item.path)))
        if unsaved:
            fsync_dir(out_dir)
        summary = {**output.summary, "pipeline_version": pipeline.version,
                   "timings_s": {k: round(v, 3) for k, v in output.timings_s.items()}}
        return results, summary

    def _sends(self, job: JobRow, results: list[NewResult]) -> list[tuple[str, int]]:
        sends = []
        for name in job.send_to:
            try:
                wants_pdf = bool(self.network.destination_options(name).get("pdf_report", False))
            except KeyError:
                wants_pdf = False  # the send will be dead-lettered with the reason
            n = sum(1 for r in results if r.kind != "pdf" or wants_pdf)
            sends.append((name, n))
        return sends


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
