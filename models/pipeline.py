"""The contract between the service and a pipeline: what a job hands in and gets back.

A pipeline (:class:`Pipeline`) declares its ``name``, ``version``, the settings model of its
``[pipelines.<name>]`` table (``settings_model``, parsed and validated when the service starts) and what
priors it needs (``prior_spec``: a :class:`PriorSpec` or None), and has ``run(request)``. It gets the
series the routing named, with the headers the service read once at the study's completion
(``request.headers``), writes its DICOM results into ``request.out_dir`` (durably) and lists them. It
never talks to the network (except a runtime's Triton client) and never touches the ledger.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

from imaging.results import WrittenObject
from imaging.series import InstanceHeader
from models.errors import ModelError


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
class PriorSpec:
    """What earlier study a pipeline compares with: the latest of the same patient in *modality*,
    retrieved for these SOP classes."""

    modality: str
    sop_classes: tuple[str, ...]


class PipelineIdentity(NamedTuple):
    """Which algorithm wrote a result: pipeline name, software version, model version."""

    name: str
    version: str
    model_version: int


@dataclass(frozen=True)
class PipelineRequest:
    """One job's input. *series*: SeriesInstanceUID -> instance files, as the routing named them;
    *headers*: the headers of those files as read once at the study's completion (a file missing
    here, or changed since, is read by the pipeline)."""

    study_uid: str
    series: Mapping[str, tuple[Path, ...]]
    out_dir: Path
    uid_root: str
    manufacturer: str = "AIWS open-source project"
    institution_name: str = ""
    priors: tuple[PriorStudy, ...] = ()  # only for pipelines with a ``prior_spec``
    headers: Mapping[Path, InstanceHeader] = field(default_factory=dict)


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


class PipelineSettings(Protocol):
    """The settings model of a pipeline's ``[pipelines.<name>]`` table."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PipelineSettings:
        """Parse and validate; raises ModelError naming the key and the rule."""
        ...


@dataclass(frozen=True)
class NoSettings:
    """The settings model of a pipeline that takes none: an empty table only."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> NoSettings:
        """Raises: ModelError when *raw* has any key."""
        if raw:
            raise ModelError(f"this pipeline takes no settings (got {', '.join(sorted(raw))})")
        return cls()


class Pipeline(Protocol):
    name: str
    version: str
    settings_model: ClassVar[type[PipelineSettings]]
    prior_spec: ClassVar[PriorSpec | None]

    def run(self, request: PipelineRequest) -> PipelineOutput: ...
