"""Typed rows the ledger returns."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    state: str
    generation: int
    first_received_at: float
    last_received_at: float
    completed_at: float | None
    n_instances: int
    calling_ae: str
    n_jobs: int
    unrouted: bool
    purged_at: float | None
    error: str = ""  # why the study is in state 'error' (no tag values: UIDs, counts, exception types)
    # patient-free labels the console shows to signed-in users (never logged, audited or in metrics)
    accession: str = field(default="", repr=False)
    modality: str = field(default="", repr=False)
    description: str = field(default="", repr=False)

    @classmethod
    def of(cls, r: sqlite3.Row) -> StudyRow:
        d = dict(r)
        d["unrouted"] = bool(d["unrouted"])
        return cls(**d)


@dataclass(frozen=True)
class JobRow:
    id: int
    study_uid: str
    generation: int
    pipeline: str
    series_uids: tuple[str, ...]
    send_to: tuple[str, ...]
    state: str
    attempts: int
    not_before: float
    worker: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str
    summary: dict[str, Any]

    @classmethod
    def of(cls, r: sqlite3.Row) -> JobRow:
        d = dict(r)
        d["series_uids"] = tuple(json.loads(d["series_uids"]))
        d["send_to"] = tuple(json.loads(d["send_to"]))
        d["summary"] = json.loads(d["summary"])
        return cls(**d)


@dataclass(frozen=True)
class ResultRow:
    id: int
    job_id: int
    kind: str
    sop_instance_uid: str
    series_uid: str
    sop_class_uid: str
    path: str
    created_at: float

    @classmethod
    def of(cls, r: sqlite3.Row) -> ResultRow:
        return cls(**dict(r))


@dataclass(frozen=True)
class SendRow:
    id: int
    job_id: int
    destination: str
    state: str
    attempts: int
    next_attempt_at: float
    n_files: int
    last_error: str
    created_at: float
    updated_at: float
    done_at: float | None

    @classmethod
    def of(cls, r: sqlite3.Row) -> SendRow:
        return cls(**dict(r))


@dataclass(frozen=True)
class InstanceRow:
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax: str
    path: str
    size_bytes: int
    calling_ae: str
    peer_ip: str
    received_at: float

    @classmethod
    def of(cls, r: sqlite3.Row) -> InstanceRow:
        return cls(**dict(r))


@dataclass(frozen=True)
class StudyLabels:
    """What the SCP read of a study for the console: AccessionNumber and StudyDescription (the modality is
    the instance's own). Patient data: never logged, audited, put in metrics or in a JSON answer."""

    accession: str = field(default="", repr=False)
    description: str = field(default="", repr=False)


def joined_modalities(label: str, modality: str) -> str:
    """The study's modality label with *modality* added (in order of arrival, joined by '/')."""
    have = [m for m in label.split("/") if m]
    return "/".join(have if not modality or modality in have else [*have, modality])


@dataclass(frozen=True)
class NewJob:
    """A job the router wants created for a completed study."""

    pipeline: str
    series_uids: tuple[str, ...]
    send_to: tuple[str, ...]


@dataclass(frozen=True)
class NewResult:
    """A result object a pipeline wrote (already durable in the outbox)."""

    kind: str
    sop_instance_uid: str
    series_uid: str
    sop_class_uid: str
    path: str


@dataclass(frozen=True)
class QuarantineItem:
    """An instance that cannot be read back, and why (the reason names no tag value)."""

    sop_instance_uid: str
    series_uid: str
    original_path: str
    path: str  # where it was moved ('' when there was no file to move)
    reason: str


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    original_path: str
    path: str
    reason: str
    at: float

    @classmethod
    def of(cls, r: sqlite3.Row) -> QuarantineRow:
        return cls(**dict(r))
