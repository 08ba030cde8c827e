"""Ledger: duration histograms kept as they happen, so ``/metrics`` reads a few rows per series instead of
every job's summary at each scrape (50 000 jobs: 1.9 s per scrape when derived from the summaries).

A finished job adds its observations in the transaction that records it: each stage of the pipeline's
own ``timings_s`` and the job's wall time (stage ``job``: claimed to finished) under
``job_duration`` (pipeline, stage), and the network stages under ``inference`` (model = the
algorithm version, stage). Bucket counts are stored per bucket and made cumulative when read.
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Upper bounds, seconds (a CPU 3D network takes minutes); the last bucket is +Inf.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, math.inf)
#: Stages whose timing is the network itself: the inference time per model.
INFERENCE_STAGES = ("network", "classifier")

TABLES = """
CREATE TABLE IF NOT EXISTS duration_buckets(
    metric TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL, le REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(metric, k1, k2, le)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS duration_totals(
    metric TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL, count INTEGER NOT NULL, sum REAL NOT NULL,
    PRIMARY KEY(metric, k1, k2)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Histogram:
    """One series: cumulative counts per bound of :data:`DURATION_BUCKETS`, count and sum (seconds)."""

    labels: tuple[str, str]
    cumulative: tuple[int, ...]
    count: int
    sum: float


def observe(con: sqlite3.Connection, metric: str, k1: str, k2: str, seconds: float) -> None:
    le = next(b for b in DURATION_BUCKETS if seconds <= b)
    con.execute("INSERT INTO duration_buckets VALUES(?,?,?,?,1) ON CONFLICT DO UPDATE SET n=n+1",
                (metric, k1, k2, le))
    con.execute("INSERT INTO duration_totals VALUES(?,?,?,1,?) ON CONFLICT DO UPDATE SET count=count+1,"
                " sum=sum+excluded.sum", (metric, k1, k2, seconds))


def observations(pipeline: str, summary: Mapping[str, Any], wall_s: float | None) -> Iterator[tuple[str, str, str, float]]:
    """(metric, label 1, label 2, seconds) of one finished job."""
    timings = summary.get("timings_s") or {}
    model = str(summary.get("pipeline_version") or pipeline)
    for stage, value in sorted(timings.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            yield "job_duration", pipeline, str(stage), float(value)
            if stage in INFERENCE_STAGES:
                yield "inference", model, str(stage), float(value)
    if wall_s is not None and wall_s >= 0:
        yield "job_duration", pipeline, "job", wall_s


def observe_job(con: sqlite3.Connection, pipeline: str, summary: Mapping[str, Any], wall_s: float | None) -> None:
    for metric, k1, k2, seconds in observations(pipeline, summary, wall_s):
        observe(con, metric, k1, k2, seconds)


def backfill(con: sqlite3.Connection) -> None:
    """Migration step: the observations of the jobs done before the histograms were kept (summed in
    memory, then one row per bucket and series)."""
    buckets: dict[tuple[str, str, str, float], int] = {}
    totals: dict[tuple[str, str, str], tuple[int, float]] = {}
    rows = con.execute("SELECT pipeline, summary, started_at, finished_at FROM jobs WHERE state='done'")
    for pipeline, summary, started, finished in rows:
        wall = finished - started if started is not None and finished is not None else None
        for metric, k1, k2, seconds in observations(pipeline, json.loads(summary or "{}"), wall):
            le = next(b for b in DURATION_BUCKETS if seconds <= b)
            buckets[(metric, k1, k2, le)] = buckets.get((metric, k1, k2, le), 0) + 1
            count, total = totals.get((metric, k1, k2), (0, 0.0))
            totals[(metric, k1, k2)] = (count + 1, total + seconds)
    con.executemany("INSERT INTO duration_buckets VALUES(?,?,?,?,?) ON CONFLICT DO UPDATE SET n=n+excluded.n",
                    [(*key, n) for key, n in buckets.items()])
    con.executemany("INSERT INTO duration_totals VALUES(?,?,?,?,?) ON CONFLICT DO UPDATE SET"
                    " count=count+excluded.count, sum=sum+excluded.sum",
                    [(*key, count, total) for key, (count, total) in totals.items()])


def histograms(con: sqlite3.Connection, metric: str) -> list[Histogram]:
    totals = {(r[0], r[1]): (int(r[2]), float(r[3])) for r in con.execute(
        "SELECT k1, k2, count, sum FROM duration_totals WHERE metric=? ORDER BY k1, k2", (metric,))}
    per_bucket: dict[tuple[str, str], dict[float, int]] = {key: {} for key in totals}
    for k1, k2, le, n in con.execute("SELECT k1, k2, le, n FROM duration_buckets WHERE metric=?", (metric,)):
        per_bucket.setdefault((k1, k2), {})[float(le)] = int(n)
    out = []
    for key, (count, total) in totals.items():
        running, cumulative = 0, []
        for bound in DURATION_BUCKETS:
            running += per_bucket[key].get(bound, 0)
            cumulative.append(running)
        out.append(Histogram(key, tuple(cumulative), count, total))
    return out
