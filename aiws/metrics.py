"""``/metrics`` with prometheus_client: a custom collector that reads the ledger at scrape time.

Worker processes, the sender and the SCP write their events to the ledger (the one state they share),
so the collector derives every series from it instead of prometheus_client's multiprocess mode:
counters are kept in ``meta`` where rows are purged later (instances, bytes, send failures), counted
from append-only tables otherwise (associations), and job stage timings (``jobs.summary.timings_s``,
seconds) are bucketed when a job finishes (:mod:`aiws.ledger.stats`). Names of the hand-written exposition this replaces
are kept (``aiws_studies``, ``aiws_jobs``, ``aiws_sends``, ``aiws_instances``, the health gauges).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from aiws.config import Config
from aiws.health import HealthReport, check, quarantine_bytes
from aiws.ledger import Ledger
from aiws.ledger.stats import DURATION_BUCKETS


class LedgerCollector(Collector):
    """Every AIWS series, computed from the ledger and the health checks when scraped."""

    def __init__(self, config: Config, ledger: Ledger) -> None:
        self._config, self._ledger = config, ledger

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        report = check(self._config, self._ledger)
        yield from _health(report, quarantine_bytes(self._config.storage.data_dir / "spool"))
        try:
            yield from self._ledger_series()
        except sqlite3.Error:  # /health names the unreadable ledger; the health series above still come
            return

    def _ledger_series(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        for table, states in self._ledger.counts().items():
            if table == "studies":
                states = {"error": 0, **states}  # always present, so an alert on it has a series to watch
            g = GaugeMetricFamily(f"aiws_{table}", f"{table} rows by state", labels=["state"])
            for state, n in sorted(states.items()):
                g.add_metric([state], n)
            yield g
        meta = {r[0]: int(r[1]) for r in self._ledger.query(
            "SELECT key, value FROM meta WHERE key IN ('instances_received_total', 'received_bytes_total')"
            " OR key LIKE 'send_failures_total:%'")}
        yield CounterMetricFamily("aiws_instances_received", "instances received and recorded",
                                  value=meta.get("instances_received_total", 0))
        yield CounterMetricFamily("aiws_received_bytes", "bytes of instances received and recorded",
                                  value=meta.get("received_bytes_total", 0))
        failures = CounterMetricFamily("aiws_send_failures", "failed send attempts by destination",
                                       labels=["destination"])
        for key, n in sorted(meta.items()):
            if key.startswith("send_failures_total:"):
                failures.add_metric([key.split(":", 1)[1]], n)
        yield failures
        assoc = CounterMetricFamily("aiws_associations", "DICOM associations by outcome", labels=["outcome"])
        by_outcome = dict(self._ledger.query("SELECT outcome, COUNT(*) FROM associations GROUP BY outcome"))
        for outcome in sorted({"released", "aborted", "rejected", *by_outcome}):  # the usual three always shown
            assoc.add_metric([outcome], by_outcome.get(outcome, 0))
        yield assoc
        depth = GaugeMetricFamily("aiws_queue_depth", "work waiting: pending jobs, pending sends",
                                  labels=["queue"])
        for queue in ("jobs", "sends"):
            n = self._ledger.query(f"SELECT COUNT(*) FROM {queue} WHERE state='pending'")[0][0]
            depth.add_metric([queue], n)
        yield depth
        yield self._histogram("aiws_job_duration_seconds", "job duration per pipeline and stage (the pipeline's "
                              "own timings; 'job': claimed to finished, outputs and sends queued included)",
                              "job_duration", ["pipeline", "stage"])
        yield self._histogram("aiws_inference_seconds", "network time per model (algorithm version) and stage",
                              "inference", ["model", "stage"])

    def _histogram(self, name: str, doc: str, metric: str, labels: list[str]) -> HistogramMetricFamily:
        h = HistogramMetricFamily(name, doc, labels=labels)
        for series in self._ledger.histograms(metric):
            buckets = [(floatToGoString(b), c) for b, c in zip(DURATION_BUCKETS, series.cumulative, strict=True)]
            h.add_metric(list(series.labels), buckets, series.sum)
        return h


def _health(report: HealthReport, held_bytes: int) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
    yield GaugeMetricFamily("aiws_health_degraded", "1 when /health reports degraded", int(bool(report.reasons)))
    yield GaugeMetricFamily("aiws_disk_free_bytes", "free bytes under the data directory", report.disk_free_bytes)
    yield GaugeMetricFamily("aiws_disk_watermark_bytes", "below this free space new images are refused",
                            report.watermark_bytes)
    yield GaugeMetricFamily("aiws_quarantined_instances", "instance files in the quarantine",
                            report.quarantined_files)
    yield GaugeMetricFamily("aiws_quarantine_bytes", "bytes held in the quarantine", held_bytes)
    yield CounterMetricFamily("aiws_scheduler_errors", "failed scheduler steps", report.scheduler_errors_total)
    dead = GaugeMetricFamily("aiws_destination_dead_lettering",
                             "1 when the latest finished send to the destination is dead", labels=["destination"])
    for d in report.dead_letter_destinations:
        dead.add_metric([d], 1)
    yield dead
    refused = CounterMetricFamily("aiws_instances_refused", "instances the ledger refused, by kind", labels=["kind"])
    for kind, n in sorted(report.refused_instances.items()):
        refused.add_metric([kind], n)
    yield refused
    if report.triton_up is not None:
        yield GaugeMetricFamily("aiws_triton_up", "1 when Triton answers its liveness probe", int(report.triton_up))


def exposition(config: Config, ledger: Ledger) -> bytes:
    """The Prometheus text format of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(config, ledger))
    return generate_latest(registry)
