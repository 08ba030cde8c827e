"""The calcium result as DICOM: TID 1500 SR, SEG (one segment per calcified vessel), summary SC.

SR: one measurement group per coronary artery (finding site coded: LM, LAD, LCx, RCA; Agatston
at 3 mm equivalent with the Agatston method code, volume, mass when calibrated, lesion count),
referencing that vessel's SEG segment when it has calcium, and a total group with the CAC-DRS
category. The Agatston method, the 130 HU / 1 mm² rules and the 3 mm normalisation
(raw x increment / 3) are stated as algorithm parameters on every group and measurement.
Written through :mod:`imaging` in one call (:func:`imaging.bundle.write_bundle`: SEG, SR, key-image SC,
durable saving). Acquisition warnings (not 120 kVp, not ECG-gated) are algorithm parameters of the SR and SEG
and the first lines of every key image's legend.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from imaging.bundle import BundleOptions, write_bundle
from imaging.provenance import algorithm_version
from imaging.results import (
    AlgorithmId,
    Code,
    Finding,
    Graphic3D,
    ImageRegion3D,
    Measurement,
    QualitativeEvaluation,
    ResultContext,
    Segment,
)
from imaging.volume import Volume
from models.coronary_ct.calcium import CORONARIES, MIN_AREA_MM2, THRESHOLD_HU, Vessel, VesselScore
from models.coronary_ct.findings import CalciumFindings, RejectedCalcium, RejectedKind
from models.coronary_ct.network import MODEL_NAME
from models.coronary_ct.volume_io import Canonical
from models.pipeline import OutputFile, PipelineRequest

LOGGER = logging.getLogger(__name__)

SITES: dict[Vessel, Code] = {
    Vessel.LM: Code("3227004", "SCT", "Left Main Coronary Artery"),
    Vessel.LAD: Code("59438005", "SCT", "Anterior Descending Branch of Left Coronary Artery"),
    Vessel.LCX: Code("57396003", "SCT", "Circumflex Coronary Artery"),
    Vessel.RCA: Code("13647002", "SCT", "Right Coronary Artery"),
}
CORONARY_ARTERY = Code("41801008", "SCT", "Coronary artery")
CALCIFIED_PLAQUE = Code("29483008", "SCT", "Calcified atheromatous plaque")
CALCIFICATION = Code("237897009", "SCT", "Vascular calcification")
MORPHOLOGY = Code("49755003", "SCT", "Morphologically Altered Structure")
CALCIUM_SCORE = Code("112058", "DCM", "Calcium score")
CALCIUM_VOLUME = Code("122660", "DCM", "Calcium Volume")
CALCIUM_MASS = Code("122661", "DCM", "Calcium Mass")
LESION_COUNT = Code("246206008", "SCT", "Number of lesions")
AGATSTON_METHOD = Code("112055", "DCM", "Agatston scoring method")
VOLUME_METHOD = Code("112056", "DCM", "Volume scoring method")
MASS_METHOD = Code("112057", "DCM", "Mass scoring method")
CAC_DRS = Code("CACDRS", "99AIWS", "CAC-DRS category")
PROCEDURE = Code("426005005", "SCT", "Cardiac CT for calcium scoring")
NO_UNITS, MM3, MG, LESIONS = (Code("1", "UCUM", "no units"), Code("mm3", "UCUM", "cubic millimeter"),
                              Code("mg", "UCUM", "milligram"), Code("{lesions}", "UCUM", "lesions"))
BONE = Code("272673000", "SCT", "Bone structure")
SCORING_STATUS = Code("SCORESTATUS", "99AIWS", "Calcium scoring status")
#: non-coronary calcifications listed one by one in the SR ("not scored"); the rest are one group
MAX_NOT_SCORED_LISTED = 12
#: CT window for the key images (centre, width) in HU: calcium bright, soft tissue grey.
CALCIUM_WINDOW = (200.0, 1000.0)


def _measurements(v: VesselScore) -> tuple[Measurement, ...]:
    out = [Measurement(CALCIUM_SCORE, round(v.agatston, 2), NO_UNITS, method=AGATSTON_METHOD),
           Measurement(CALCIUM_VOLUME, round(v.volume_mm3, 2), MM3, method=VOLUME_METHOD)]
    if v.mass_mg is not None:
        out.append(Measurement(CALCIUM_MASS, round(v.mass_mg, 2), MG, method=MASS_METHOD))
    out.append(Measurement(LESION_COUNT, float(v.lesion_count), LESIONS))
    return tuple(out)


def context_for(request: PipelineRequest, pipeline: str, version: str, model_version: int,
                increment_mm: float) -> ResultContext:
    """Provenance of the result: algorithm name/version and the scoring conventions as parameters."""
    params = (("model", f"coronary_calcium_labeller v{model_version}"),
              ("method", "Agatston 1990"),
              ("threshold_hu", f"{THRESHOLD_HU:g}"), ("min_lesion_area_mm2", f"{MIN_AREA_MM2:g}"),
              ("connectivity", "2D per slice, 8-connected"),
              ("normalisation", f"3 mm equivalent = raw x ({increment_mm:g} mm / 3 mm)"))
    full = algorithm_version(version, MODEL_NAME, model_version)
    return ResultContext(uid_root=request.uid_root, pipeline=pipeline, model_version=full,
                         manufacturer=request.manufacturer, institution_name=request.institution_name,
                         algorithm=AlgorithmId(pipeline, full, params))


def segments_and_findings(findings: CalciumFindings, shape: tuple[int, int, int], canon: Canonical
                          ) -> tuple[list[Segment], list[Finding]]:
    """One SEG segment per calcified vessel (masks on the source grid) and the SR/SC findings, LM..RCA then total."""
    segments: list[Segment] = []
    groups: list[Finding] = []
    for vessel in CORONARIES:
        counted = findings.counted(vessel)
        number = None
        if counted:
            mask = np.zeros(shape, dtype=bool)
            for les in counted:
                mask[les.slice_index, les.pixels[:, 0], les.pixels[:, 1]] = True
            segments.append(Segment(label=f"{vessel.value} calcium", category=MORPHOLOGY, property_type=CALCIFICATION,
                                    mask=canon.to_source(mask), tracking_id=f"calcium-{vessel.value}",
                                    anatomic_region=SITES[vessel]))
            number = len(segments)
        groups.append(Finding(tracking_id=f"calcium-{vessel.value}", finding_type=CALCIFIED_PLAQUE,
                              finding_site=SITES[vessel], measurements=_measurements(findings.score.vessels[vessel]),
                              segment_number=number, label=f"{vessel.value} calcium"))
    s = findings.score
    drs = s.cac_drs
    groups.append(Finding(tracking_id="calcium-total", finding_type=CALCIFIED_PLAQUE, finding_site=CORONARY_ARTERY,
                          measurements=_measurements(s.total),
                          evaluations=(QualitativeEvaluation(CAC_DRS, Code(drs, "99AIWS", f"CAC-DRS {drs}")),),
                          label=f"Total (3 mm equivalent, increment {s.increment_mm:.3g} mm)"))
    groups += not_scored_findings(findings, shape, canon)
    return segments, groups


def not_scored_findings(findings: CalciumFindings, shape: tuple[int, int, int], canon: Canonical) -> list[Finding]:
    """The calcium left out of the score, as "not scored" groups: bone as one group (structure count and volume);
    each non-coronary calcification (valve, annulus, aortic wall) as its own group at its location, the first
    :data:`MAX_NOT_SCORED_LISTED`, the rest in one group."""
    groups: list[Finding] = []
    bone = [r for r in findings.rejected if r.kind is RejectedKind.BONE]
    other = [r for r in findings.rejected if r.kind is RejectedKind.NON_CORONARY]
    if bone:
        groups.append(_not_scored("not-scored-bone", BONE, bone, None, f"Not scored: bone ({len(bone)})"))
    for i, r in enumerate(other[:MAX_NOT_SCORED_LISTED], 1):
        k, (row, col) = r.slice_index, r.centre_rc
        k, row, col = (shape[0] - 1 - k if canon.flip_k else k, shape[1] - 1 - row if canon.flip_r else row,
                       shape[2] - 1 - col if canon.flip_c else col)
        d = r.radius_px  # a circle on its slice, in the frame of reference (SCOORD3D): no extra key image
        region = ImageRegion3D(Graphic3D.ELLIPSE, ((k, row, col - d), (k, row, col + d), (k, row - d, col),
                                                   (k, row + d, col)))
        groups.append(_not_scored(f"not-scored-{i}", CALCIFICATION, [r], region, f"Not scored {i}: not coronary"))
    if other[MAX_NOT_SCORED_LISTED:]:
        rest = other[MAX_NOT_SCORED_LISTED:]
        groups.append(_not_scored("not-scored-rest", CALCIFICATION, rest, None, f"Not scored: {len(rest)} more"))
    return groups


def _not_scored(tracking_id: str, site: Code, rejected: list[RejectedCalcium], region: ImageRegion3D | None,
                label: str) -> Finding:
    kind = rejected[0].kind
    measurements = (Measurement(CALCIUM_VOLUME, round(sum(r.volume_mm3 for r in rejected), 2), MM3),
                    Measurement(LESION_COUNT, float(sum(r.lesion_count for r in rejected)), LESIONS))
    status = Code("NOTSCORED-" + ("BONE" if kind is RejectedKind.BONE else "NONCOR"), "99AIWS",
                  f"Not scored: {kind.value}")
    return Finding(tracking_id=tracking_id, finding_type=CALCIFICATION, finding_site=site, measurements=measurements,
                   evaluations=(QualitativeEvaluation(SCORING_STATUS, status),), region3d=region, label=label)


def result_context(request: PipelineRequest, identity: tuple[str, str, int], findings: CalciumFindings
                   ) -> ResultContext:
    """:func:`context_for` with the acquisition warnings as parameters ``acquisition_warning_1``, ``_2``:
    stated beside the scoring conventions on every measurement (SR, SEG), and drawn first in every key
    image's legend (:func:`imaging.capture.legend_notes`)."""
    pipeline, version, model_version = identity
    context = context_for(request, pipeline, version, model_version, findings.score.increment_mm)
    if not findings.acquisition_warnings:
        return context
    algorithm = context.algorithm_id
    warned = tuple((f"acquisition_warning_{i}", w) for i, w in enumerate(findings.acquisition_warnings, 1))
    return dataclasses.replace(context, algorithm=dataclasses.replace(algorithm,
                                                                      parameters=algorithm.parameters + warned))


def write_outputs(request: PipelineRequest, volume: Volume, canon: Canonical, findings: CalciumFindings, identity: tuple[str, str, int]) -> tuple[OutputFile, ...]:
    """Write SEG (when any coronary calcium), SR and the summary SC into ``request.out_dir``.

    Raises:
        WriteError: an object cannot be built or saved.
    """
    context = result_context(request, identity, findings)
    segments, groups = segments_and_findings(findings, volume.shape, canon)
    written = write_bundle(volume, groups, context, request.out_dir, segments=segments,
                           options=BundleOptions(window=CALCIUM_WINDOW, procedure=PROCEDURE))
    return tuple(OutputFile.of(w) for w in written)

