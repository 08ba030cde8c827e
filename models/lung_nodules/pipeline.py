"""Pipeline ``lung_nodules``: chest CT -> nodules, Lung-RADS v2022, Fleischner 2017 -> SR + SEG + SC (+ PDF).

Stages (timed in ``PipelineOutput.timings_s``): ``load`` (series selection and volume),
``preprocess`` (resampling to the network grid), ``network`` (sliding-window probability map),
``classifier`` (the candidate classifier, for versions that have one), ``measures`` (lung mask,
candidates, axes, types, prior comparison, categories) and ``writing`` (SEG, SR, summary SC, PDF).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydicom.uid import CTImageStorage

from imaging.backend import ArrayBackend
from imaging.bundle import BundleOptions, write_bundle
from imaging.geometry import IssueKind
from imaging.provenance import algorithm_version
from imaging.results import AlgorithmId, ResultContext
from imaging.rules import MatchRules
from imaging.series import InstanceHeader, SeriesInfo, choose, group_series
from imaging.volume import Volume, load_volume
from models.errors import ModelError, NoSuitableSeries
from models.lung_nodules.candidates import CandidateSettings, Nodule
from models.lung_nodules.compare import Comparison, compare, interval_days
from models.lung_nodules.context import ContextRule, parse_rules, study_context
from models.lung_nodules.fleischner import Indication, Risk, fleischner_recommendation
from models.lung_nodules.inference import MODEL_NAME, Detection, candidate_settings, detect_nodules
from models.lung_nodules.lungrads import NoduleForRads, assess, exam_category
from models.lung_nodules.report import AssessedNodule, exam_finding, nodule_finding, nodule_segment, summary
from models.pipeline import OutputFile, PipelineOutput, PipelineRequest, PriorSpec, PriorStudy
from models.runtime.base import InferenceRuntime

LOGGER = logging.getLogger(__name__)

#: Chest CT, primary axial, slices of at most 2.5 mm.
DEFAULT_SELECT: dict[str, Any] = {"Modality": "CT", "Orientation": "AXIAL", "SliceThickness": [0.0, 2.5]}


_KEYS = {"select", "model_version", "indication", "fleischner_risk", "rules", "match_mm", "prior_min_score"}


@dataclass(frozen=True)
class LungSettings:
    """``[pipelines.lung_nodules]``: series rule, model version (None = latest), the per-study context
    (indication and Fleischner risk when no tag rule says, and the tag rules: :mod:`context`), match
    distance and the score a prior candidate needs to be the earlier measurement of a current nodule."""

    select: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SELECT))
    model_version: int | None = None
    indication: Indication = Indication.UNKNOWN
    fleischner_risk: Risk = Risk.UNKNOWN
    rules: tuple[ContextRule, ...] = ()
    match_mm: float = 10.0
    prior_min_score: float = 0.5  # score a prior candidate needs to count as the earlier size of a current nodule

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> LungSettings:
        """Raises: ModelError on an unknown key or value, naming it (the old site-wide ``risk`` names its
        replacements)."""
        if "risk" in raw:
            raise ModelError("pipelines.lung_nodules.risk: no longer a site-wide switch; set the risk per study "
                             "with [[pipelines.lung_nodules.rules]] (match = {...}, fleischner_risk = \"high\") and "
                             "the default for studies no rule matches with pipelines.lung_nodules.fleischner_risk")
        unknown = set(raw) - _KEYS
        if unknown:
            raise ModelError(f"pipelines.lung_nodules: unknown keys {sorted(unknown)}")
        rules = parse_rules(raw.get("rules", []))
        try:
            indication = Indication(raw.get("indication", "unknown"))
        except ValueError:
            raise ModelError(f"pipelines.lung_nodules.indication: {raw.get('indication')!r} is not one of "
                             f"{[v.value for v in Indication]}") from None
        try:
            risk = Risk(raw.get("fleischner_risk", "unknown"))
        except ValueError:
            raise ModelError(f"pipelines.lung_nodules.fleischner_risk: {raw.get('fleischner_risk')!r} is not one "
                             f"of {[v.value for v in Risk]}") from None
        try:
            return cls(select=dict(raw.get("select", DEFAULT_SELECT)), model_version=raw.get("model_version"),
                       indication=indication, fleischner_risk=risk, rules=rules,
                       match_mm=float(raw.get("match_mm", 10.0)),
                       prior_min_score=float(raw.get("prior_min_score", 0.5)))
        except ValueError as exc:
            raise ModelError(f"pipelines.lung_nodules: {exc}") from None


def choose_series(series: Mapping[str, tuple[Any, ...]], select: Mapping[str, Any], study_uid: str,
                  known: Mapping[Any, InstanceHeader] | None = None) -> SeriesInfo:
    """The thinnest primary original series matching *select* (then the one with most images); *known*:
    headers already read (``PipelineRequest.headers``), not read again.

    Raises:
        NoSuitableSeries: naming the series seen.
    """
    files = [p for paths in series.values() for p in paths]
    grouped = group_series(files, known=known)
    chosen = choose(grouped.values(), MatchRules.parse(select), original_only=True,
                    prefer=lambda s: (float(s.get("SliceThickness", 99) or 99), -len(s.files)))
    if chosen is None:
        seen = ", ".join(f"{s.modality} {s.orientation or '?'} {s.get('SliceThickness', '?')} mm" for s in grouped.values())
        raise NoSuitableSeries(f"study {study_uid}: no chest CT series matching {dict(select)} (seen: {seen})")
    return chosen


def mask_on_source(nodule: Nodule, detection: Detection, volume: Volume) -> np.ndarray:
    """The nodule's mask (on the reoriented detection grid) on the source volume's voxels.

    The detection grid is the source grid with axes permuted/flipped, so every voxel maps
    exactly onto one source voxel.
    """
    out = np.zeros(volume.shape, dtype=bool)
    idx = np.argwhere(nodule.mask) + np.array([s.start for s in nodule.box])
    if idx.size == 0:
        return out
    src = np.rint(volume.lps_to_index(detection.grid.to_mm(idx))).astype(int)
    inside = np.all((src >= 0) & (src < np.array(volume.shape)), axis=1)
    out[tuple(src[inside].T)] = True
    return out


def _for_rads(nodule: Nodule, comparison: Comparison) -> NoduleForRads:
    return NoduleForRads(nodule.nodule_type, nodule.mean_diameter_mm,
                         min(nodule.solid_diameter_mm, nodule.mean_diameter_mm), comparison.status,
                         nodule.location.juxtapleural, nodule.location.benign_features, nodule.location.features,
                         comparison.vdt_days)


#: A stack sheared by more than this (gantry tilt) is refused: the nodule grids and measures assume slices
#: perpendicular to the stack, and the shear would distort shape and size. Reconstruct without tilt.
MAX_TILT_DEG = 1.0


def tilt_of(volume: Volume) -> float:
    """The gantry tilt the loader reported for *volume* (degrees; 0 when none)."""
    return max((i.value for i in volume.issues if i.kind == IssueKind.GANTRY_TILT), default=0.0)


def refuse_tilted(volume: Volume) -> Volume:
    """*volume* unchanged, unless its slices are tilted by more than :data:`MAX_TILT_DEG`.

    Raises:
        NoSuitableSeries: naming the series and the angle.
    """
    tilt = tilt_of(volume)
    if tilt > MAX_TILT_DEG:
        raise NoSuitableSeries(f"series {volume.series_uid}: gantry tilt of {tilt:.1f} degrees (at most "
                               f"{MAX_TILT_DEG:.0f}); the lung pipeline needs an untilted reconstruction")
    return volume


class LungNodulePipeline:
    """Lung nodule detection and categorisation; holds the runtime (sessions reused across studies)."""

    name = "lung_nodules"
    version = "1.0.0"
    settings_model = LungSettings
    prior_spec: PriorSpec | None = PriorSpec(modality="CT", sop_classes=(CTImageStorage,))

    def __init__(self, runtime: InferenceRuntime, settings: LungSettings = LungSettings(),
                 backend: ArrayBackend | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.backend = backend or ArrayBackend.numpy()

    def _detect(self, volume: Volume, version: int, settings: CandidateSettings | None = None) -> Detection:
        return detect_nodules(self.runtime, volume.voxels, volume.grid, MODEL_NAME, version, settings,
                              backend=self.backend)

    def _prior(self, prior: PriorStudy | None, version: int) -> list[Nodule] | None:
        """Candidates of the prior exam, at the lower ``prior_min_score``: they are only used as the earlier
        measurement of a current nodule at the same place (they never become findings of their own)."""
        if prior is None:
            return None
        info = choose_series(prior.series, self.settings.select, prior.study_uid)
        operating = candidate_settings(self.runtime, MODEL_NAME, version)
        settings = replace(operating, min_score=min(operating.min_score, self.settings.prior_min_score))
        volume = load_volume(info.instances)
        if tilt_of(volume) > MAX_TILT_DEG:
            LOGGER.warning("study %s: prior series %s has a gantry tilt of %.1f degrees; compared without it",
                           prior.study_uid, volume.series_uid, tilt_of(volume))
            return None
        return self._detect(volume, version, settings).nodules

    def run(self, request: PipelineRequest) -> PipelineOutput:
        """Find, measure and categorise nodules; write SEG, SR, SC and PDF into ``request.out_dir``.

        Raises:
            NoSuitableSeries: no axial chest CT <= 2.5 mm among the routed series.
            ModelError: model problems; RetryLater when Triton is unavailable.
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        info = choose_series(request.series, self.settings.select, request.study_uid, request.headers)
        volume = refuse_tilted(load_volume(info.instances))
        version = self.runtime.resolve_version(MODEL_NAME, self.settings.model_version)
        timings["load"] = time.perf_counter() - t

        detection = self._detect(volume, version)
        timings["preprocess"] = detection.timings_s.get("preprocess", 0.0)
        timings["network"] = detection.timings_s.get("network", 0.0)
        timings["classifier"] = detection.timings_s.get("classifier", 0.0)
        t = time.perf_counter()
        prior = request.priors[0] if request.priors else None
        prior_nodules = self._prior(prior, version)
        days = interval_days(prior.study_date, str(info.header.get("StudyDate", ""))) if prior else 0.0
        comparisons = compare(detection.nodules, prior_nodules, days, self.settings.match_mm)
        assessed: list[AssessedNodule] = []
        for nodule, cmp in zip(detection.nodules, comparisons, strict=True):
            mask = mask_on_source(nodule, detection, volume)
            if not mask.any():
                LOGGER.warning("study %s: a nodule of %.1f mm has no voxel on the source grid; dropped",
                               request.study_uid, nodule.mean_diameter_mm)
                continue
            rads = assess(_for_rads(nodule, cmp))
            assessed.append(AssessedNodule(nodule, cmp, rads.category, mask, len(assessed) + 1, rads.rules))
        exam = exam_category(_for_rads(a.nodule, a.comparison) for a in assessed)
        context = study_context(info.header, self.settings.rules, self.settings.indication,
                                self.settings.fleischner_risk)
        fleischner = fleischner_recommendation([(a.nodule.nodule_type, a.nodule.mean_diameter_mm) for a in assessed],
                                               context.risk, context.age_years, context.indication)
        timings["measures"] = time.perf_counter() - t + sum(
            v for k, v in detection.timings_s.items() if k not in ("preprocess", "network", "classifier"))

        t = time.perf_counter()
        parts: tuple[tuple[str, str], ...] = (("network", f"{MODEL_NAME} v{version}"),)
        if detection.classifier is not None:
            parts += (("classifier", f"{detection.classifier.model} v{detection.classifier.version}"),)
        parts += (("lung_rads", "v2022"),)
        result_context = ResultContext(
            uid_root=request.uid_root, pipeline=self.name, model_version=algorithm_version(self.version, MODEL_NAME,
                                                                                           version),
            manufacturer=request.manufacturer, institution_name=request.institution_name,
            algorithm=AlgorithmId(self.name, algorithm_version(self.version, MODEL_NAME, version), parts),
        )
        findings = [nodule_finding(a) for a in assessed] + [exam_finding(exam, len(assessed), prior is not None,
                                                                         context)]
        segments = [nodule_segment(a) for a in assessed]
        written = write_bundle(volume, findings, result_context, request.out_dir, segments=segments,
                               options=BundleOptions(pdf=True, window=(-600.0, 1500.0)))
        timings["writing"] = time.perf_counter() - t
        LOGGER.info("study %s: %s found %d nodule(s), Lung-RADS %s, indication %s, series %s", request.study_uid,
                    self.name, len(assessed), exam.value, context.indication, info.series_uid)
        result = {**summary(assessed, exam, fleischner, context), "series_uid": info.series_uid,
                  "model_version": version,
                  "prior_study_uid": prior.study_uid if prior else None}
        return PipelineOutput(files=tuple(OutputFile.of(w) for w in written), summary=result,
                              timings_s=timings)
