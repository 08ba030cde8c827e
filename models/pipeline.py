"""The contract between the service and a pipeline: what a job hands in and gets back.

A pipeline is any object with ``name``, ``version`` and ``run(request)``. It
reads the instance files it is given, writes its DICOM results into
``request.out_dir`` (durably) and lists them. It never talks to the network
(except a runtime's Triton client) and never touches the ledger.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imaging.results import WrittenObject


@dataclass(frozen=True)
class PriorStudy:
    """An earlier study of the same patient, fetched by the service for comparison.

    ``results`` are result objects (e.g. an SR) a pipeline already produced
    for it, so a prior can be compared without being measured again.
    """

    study_uid: str
    study_date: str  # YYYYMMDD
    series: Mapping[str, tuple[Path, ...]]
    results: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PipelineRequest:
    study_uid: str
    series: Mapping[str, tuple[Path, ...]]  # SeriesInstanceUID -> instance files, as routed
    out_dir: Path
    uid_root: str
    manufacturer: str = "AIWS open-source project"
    institution_name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    priors: tuple[PriorStudy, ...] = ()  # only for pipelines whose ``uses_priors`` is True


@dataclass(frozen=True)
class OutputFile:
    """One written result object. ``kind``: sr, seg, sc, pdf, gsps, …; the UIDs it was written with
    (empty when the pipeline did not give them: the service then reads them from the file)."""

    kind: str
    path: Path
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    series_instance_uid: str = ""

    @classmethod
    def of(cls, written: WrittenObject) -> OutputFile:
        """From what :mod:`imaging`'s writers saved (:func:`imaging.provenance.save_result`)."""
        return cls(written.kind, written.path, written.sop_class_uid, written.sop_instance_uid,
                   written.series_instance_uid)


@dataclass(frozen=True)
class PipelineOutput:
    files: tuple[OutputFile, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)  # stage -> seconds (load, network, measures, writing)


class Pipeline(Protocol):
    name: str
    version: str

    def run(self, request: PipelineRequest) -> PipelineOutput: ...
