"""Pipeline ``coronary_ct``: gated non-contrast CT -> calcium scores per vessel -> SR + SEG + SC.

Stages (timed in ``PipelineOutput.timings_s``): ``load`` (series selection and volume),
``network`` (lesion patches and the labeller through :mod:`models.runtime`), ``measures``
(candidates and scores) and ``writing`` (SR, SEG, summary SC).

Before scoring, the acquisition is checked against Agatston's (:func:`calcium.acquisition_problems`):
120 kVp and ECG gating, read from the series header (:func:`tube_voltage_kvp`, :func:`ecg_gating`).
With ``acquisition_check = "warn"`` (the default) what departs is written as a warning into the SR
(algorithm parameters ``acquisition_warning_1``, ``_2``), the summary and the job summary; with ``"refuse"`` the
series is refused (:class:`NoSuitableSeries`) naming the rule.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging.provenance import algorithm_version
from imaging.volume import load_volume
from models.coronary_ct.calcium import acquisition_problems, find_lesions, score
from models.coronary_ct.findings import CalciumFindings
from models.coronary_ct.labelling import label_lesions, rejected_structures
from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.coronary_ct.outputs import write_outputs
from models.coronary_ct.volume_io import DEFAULT_SELECT, canonical_hu, choose_series, scan_geometry
from models.errors import ModelError, NoSuitableSeries
from models.pipeline import PipelineIdentity, PipelineOutput, PipelineRequest, PriorSpec
from models.runtime.base import InferenceRuntime

LOGGER = logging.getLogger(__name__)


ACQUISITION_CHECKS = ("warn", "refuse")
#: Cardiac Synchronization Technique values (DICOM 0018,9037) that mean an ECG-synchronised acquisition.
_GATED_TECHNIQUES = {"PROSPECTIVE", "RETROSPECTIVE", "PACED", "REALTIME", "REAL TIME"}
#: Attributes that only an ECG-synchronised acquisition records.
_GATING_EVIDENCE = ("TriggerTime", "NominalPercentageOfCardiacPhase", "NominalCardiacTriggerDelayTime")


def tube_voltage_kvp(header: Any) -> float | None:
    """KVP (0018,0060) of the series header, or None when absent or not a number."""
    value = header.get("KVP")
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def ecg_gating(header: Any) -> str | None:
    """``"gated"``, ``"not gated"`` or None (the header does not say), from the Cardiac Synchronization
    Technique (top level or the shared functional groups) or a trigger time / cardiac phase."""
    places = [header]
    for group in header.get("SharedFunctionalGroupsSequence") or []:
        places += list(group.get("CardiacSynchronizationSequence") or [])
    for ds in places:
        technique = str(ds.get("CardiacSynchronizationTechnique") or "").strip().upper()
        if technique in _GATED_TECHNIQUES:
            return "gated"
        if technique == "NONE":
            return "not gated"
    if any(ds.get(keyword) not in (None, "") for ds in places for keyword in _GATING_EVIDENCE):
        return "gated"
    return None


@dataclass(frozen=True)
class CoronarySettings:
    """``[pipelines.coronary_ct]``: series rule, optional mass calibration factor (mg/cm³ per HU), model version,
    and ``acquisition_check`` ("warn" or "refuse": what to do with a series not at 120 kVp or not ECG-gated)."""

    select: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SELECT))
    calibration_mg_per_cm3_hu: float | None = None
    model_version: int | None = None
    acquisition_check: str = "warn"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CoronarySettings:
        """Raises: ModelError on an unknown key or a non-positive calibration factor."""
        unknown = set(raw) - {"select", "calibration_mg_per_cm3_hu", "model_version", "acquisition_check"}
        if unknown:
            raise ModelError(f"pipelines.coronary_ct: unknown keys {sorted(unknown)}")
        check = raw.get("acquisition_check", "warn")
        if check not in ACQUISITION_CHECKS:
            raise ModelError(f"pipelines.coronary_ct.acquisition_check: {check!r} must be one of {ACQUISITION_CHECKS}")
        cal = raw.get("calibration_mg_per_cm3_hu")
        if cal is not None and float(cal) <= 0:
            raise ModelError(f"pipelines.coronary_ct.calibration_mg_per_cm3_hu: {cal} must be > 0")
        return cls(select=dict(raw.get("select", DEFAULT_SELECT)),
                   calibration_mg_per_cm3_hu=float(cal) if cal is not None else None,
                   model_version=raw.get("model_version"), acquisition_check=check)


class CoronaryCalciumPipeline:
    """Coronary artery calcium scoring; holds the runtime (sessions are reused across studies)."""

    name = "coronary_ct"
    version = "1.0.0"
    settings_model = CoronarySettings
    prior_spec: PriorSpec | None = None

    def __init__(self, runtime: InferenceRuntime, settings: CoronarySettings = CoronarySettings()) -> None:
        self.runtime = runtime
        self.settings = settings

    def _predict(self, model_version: int) -> Any:
        def predict(x: np.ndarray) -> np.ndarray:
            result = self.runtime.infer(MODEL_NAME, {INPUT_NAME: x}, version=model_version)
            return result.outputs[OUTPUT_NAME]

        return predict

    def run(self, request: PipelineRequest) -> PipelineOutput:
        """Score the study's calcium-score series and write SR, SEG and SC into ``request.out_dir``.

        Raises:
            NoSuitableSeries: no gated axial CT series of 2-3.5 mm among the routed series.
            ModelError: the labeller is missing or misbehaves; RetryLater when Triton is unavailable.
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        info = choose_series(request.series, self.settings.select, request.study_uid, request.headers)
        warnings = acquisition_problems(tube_voltage_kvp(info.header), ecg_gating(info.header))
        if warnings and self.settings.acquisition_check == "refuse":
            raise NoSuitableSeries(f"study {request.study_uid}: series {info.series_uid} refused for Agatston scoring "
                                   f"(acquisition_check = refuse): {'; '.join(warnings)}")
        for warning in warnings:
            LOGGER.warning("study %s series %s: %s", request.study_uid, info.series_uid, warning)
        volume = load_volume(info.instances)  # headers read once at completion
        hu, canon = canonical_hu(volume)
        geometry = scan_geometry(volume)
        model_version = self.runtime.resolve_version(MODEL_NAME, self.settings.model_version)
        timings["load"] = time.perf_counter() - t

        t = time.perf_counter()
        lesions = find_lesions(hu, geometry)
        timings["measures"] = time.perf_counter() - t
        t = time.perf_counter()
        labels = label_lesions(hu, geometry, lesions, self._predict(model_version))
        timings["network"] = time.perf_counter() - t
        t = time.perf_counter()
        result = score(lesions, labels, geometry, self.settings.calibration_mg_per_cm3_hu)
        timings["measures"] += time.perf_counter() - t

        t = time.perf_counter()
        algorithm = f"{self.name} {algorithm_version(self.version, MODEL_NAME, model_version)}"
        rejected = tuple(rejected_structures(lesions, labels, geometry, hu.shape))
        findings = CalciumFindings(lesions, labels, result, algorithm, tuple(warnings), rejected)
        files = write_outputs(request, volume, canon, findings, PipelineIdentity(self.name, self.version, model_version))
        timings["writing"] = time.perf_counter() - t
        LOGGER.info("study %s: %s total Agatston %.1f (%s) from series %s", request.study_uid, self.name,
                    result.total.agatston, result.cac_drs, info.series_uid)
        summary = {**findings.summary(), "series_uid": info.series_uid, "model_version": model_version}
        return PipelineOutput(files=files, summary=summary, timings_s=timings)

