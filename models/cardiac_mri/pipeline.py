"""Pipeline ``cardiac_mri``: short-axis cine -> LV/RV volumes, EF, LV mass -> SR + SEG + SC.

Stages (timed in ``PipelineOutput.timings_s``): ``load`` (series selection, cine),
``network`` (segmentation of every slice and phase through :mod:`models.runtime`),
``measures`` (method of discs, ED/ES, mass, indices, flags) and ``writing`` (SR, SEG, SC).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging.provenance import algorithm_version
from models.cardiac_mri.cine_io import DEFAULT_SELECT, choose_series, load_stack
from models.cardiac_mri.findings import CardiacFindings
from models.cardiac_mri.function import LabelMasks, cardiac_function, volume_curve_ml
from models.cardiac_mri.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.cardiac_mri.outputs import write_outputs
from models.cardiac_mri.segment import basal_myocardium_rule, segment_images
from models.errors import ModelError
from models.pipeline import PipelineIdentity, PipelineOutput, PipelineRequest, PriorSpec
from models.runtime.base import InferenceRuntime

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardiacSettings:
    """``[pipelines.cardiac_mri]``: series rule and model version (None = latest)."""

    select: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SELECT))
    model_version: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CardiacSettings:
        """Raises: ModelError on an unknown key."""
        unknown = set(raw) - {"select", "model_version"}
        if unknown:
            raise ModelError(f"pipelines.cardiac_mri: unknown keys {sorted(unknown)}")
        return cls(select=dict(raw.get("select", DEFAULT_SELECT)), model_version=raw.get("model_version"))


def masks_of(labels: np.ndarray) -> LabelMasks:
    """Label array (0 background, 1 LV pool, 2 LV myocardium, 3 RV pool) -> boolean masks."""
    return LabelMasks(labels == 1, labels == 2, labels == 3)


class CardiacFunctionPipeline:
    """LV/RV function from a short-axis cine; holds the runtime (sessions are reused across studies)."""

    name = "cardiac_mri"
    version = "1.0.0"
    settings_model = CardiacSettings
    prior_spec: PriorSpec | None = None

    def __init__(self, runtime: InferenceRuntime, settings: CardiacSettings = CardiacSettings()) -> None:
        self.runtime = runtime
        self.settings = settings

    def _predict(self, model_version: int) -> Any:
        def predict(x: np.ndarray) -> np.ndarray:
            return self.runtime.infer(MODEL_NAME, {INPUT_NAME: x}, version=model_version).outputs[OUTPUT_NAME]

        return predict

    def run(self, request: PipelineRequest) -> PipelineOutput:
        """Measure the study's short-axis cine and write SR, SEG (ED and ES) and the summary SC.

        Raises:
            NoSuitableSeries: no cine with >= 3 regularly spaced locations and >= 8 phases.
            ModelError: no LV found, or the network misbehaves; RetryLater when Triton is unavailable.
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        info = choose_series(request.series, self.settings.select, request.study_uid, request.headers)
        stack = load_stack(info.instances)  # headers read once at completion
        model_version = self.runtime.resolve_version(MODEL_NAME, self.settings.model_version)
        timings["load"] = time.perf_counter() - t

        t = time.perf_counter()
        flat = stack.images.reshape(-1, *stack.images.shape[2:])
        labels = segment_images(flat, self._predict(model_version)).reshape(stack.images.shape)
        labels = basal_myocardium_rule(labels)
        timings["network"] = time.perf_counter() - t

        t = time.perf_counter()
        masks = masks_of(labels)
        function = cardiac_function(masks, stack.geometry, stack.heart_rate_bpm, stack.bsa_m2)
        findings = CardiacFindings(
            function=function, labels=labels,
            lv_curve_ml=volume_curve_ml(masks.lv_pool, stack.geometry),
            rv_curve_ml=volume_curve_ml(masks.rv_pool, stack.geometry),
            trigger_times_ms=stack.trigger_times_ms, sex=stack.sex,
            algorithm=f"{self.name} {algorithm_version(self.version, MODEL_NAME, model_version)}")
        timings["measures"] = time.perf_counter() - t

        t = time.perf_counter()
        files = write_outputs(request, stack, findings, PipelineIdentity(self.name, self.version, model_version))
        timings["writing"] = time.perf_counter() - t
        lv = function.lv
        LOGGER.info("study %s: %s EDV %.1f ml ESV %.1f ml EF %.1f %% from series %s", request.study_uid, self.name,
                    lv.edv_ml, lv.esv_ml, lv.ef_pct, info.series_uid)
        summary = {**findings.summary(), "series_uid": info.series_uid, "model_version": model_version}
        return PipelineOutput(files=files, summary=summary, timings_s=timings)
