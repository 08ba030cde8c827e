"""The mammography TID 1500 Measurement Report: one SR for the four views of a study.

:func:`imaging.sr.write_sr` reports on ONE source (a Volume or a single Mammogram); a screening
study has four images, each finding sitting on its own image, so this module builds the report with
highdicom in the same way (same provenance, UIDs, observer and algorithm identification) over all
analysed images. Groups:
  * per finding and view (tracking id ``F<n>-<side><view>``): finding type (SCT mammographic breast
    mass / calcification cluster), site (left/right breast), planar ROI (SCOORD POLYLINE on the source
    image), certainty of finding (%) = region score, distance from the nipple (mm);
  * per breast (``density-L``/``density-R``): percent fibroglandular tissue (%), breast composition
    (BI-RADS 5th edition, coded);
  * the exam (``exam``): exam suspicion score (1-10), breast composition of the denser side.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from imaging.provenance import contributing_equipment, finish
from imaging.results import Code, ResultContext
from imaging.sr import algorithm_identification, device_observer
from models.errors import ModelError
from models.mammography.analysis import ExamAnalysis

if TYPE_CHECKING:
    from models.mammography.pipeline import AnalysedView

LOGGER = logging.getLogger(__name__)

SCREENING_MAMMOGRAPHY = Code("24623002", "SCT", "Screening mammography")
BREAST_COMPOSITION = Code("111006", "DCM", "Breast composition")
PERCENT_FIBROGLANDULAR = Code("111046", "DCM", "Percent Fibroglandular Tissue")
CERTAINTY = Code("111012", "DCM", "Certainty of Finding")
DISTANCE_FROM_NIPPLE = Code("AIWS-NIPPLE-DIST", "99AIWS", "Distance from nipple along the nipple axis")
EXAM_SCORE = Code("AIWS-EXAM-SCORE", "99AIWS", "Exam suspicion score (1-10)")
COMPOSITION_TYPE = Code("129715009", "SCT", "Breast composition")
MAMMOGRAPHY = Code("71651007", "SCT", "Mammography")
BOTH_BREASTS = Code("63762007", "SCT", "Both breasts")
FINDING_TYPE = {"mass": Code("129788004", "SCT", "Mammographic breast mass"),
                "calcification_cluster": Code("129769006", "SCT", "Calcification Cluster")}
SITE = {"L": Code("80248007", "SCT", "Left breast"), "R": Code("73056007", "SCT", "Right breast")}
COMPOSITION = {"a": Code("129716005", "SCT", "Almost entirely fat breast composition"),
               "b": Code("129717001", "SCT", "Scattered fibroglandular densities"),
               "c": Code("129718006", "SCT", "Heterogeneously dense"),
               "d": Code("129719003", "SCT", "Extremely dense")}
PERCENT = Code("%", "UCUM", "percent")
MM = Code("mm", "UCUM", "millimeter")
SCORE = Code("{score}", "UCUM", "score")


def _common(context: ResultContext, study_uid: str, tracking_id: str, finding_type: Code, site: Code,
            measurements: Sequence[tuple[Code, float, Code]],
            evaluations: Sequence[tuple[Code, Code]]) -> dict[str, Any]:
    algorithm = algorithm_identification(context)
    return {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=context.tracking_uid(study_uid, tracking_id),
                                                        identifier=tracking_id),
        "finding_type": finding_type.concept(),
        "finding_sites": [hd.sr.FindingSite(site.concept())],
        "algorithm_id": algorithm,
        "measurements": [hd.sr.Measurement(name=c.concept(), value=float(v), unit=u.concept(), algorithm_id=algorithm)
                         for c, v, u in measurements] or None,
        "qualitative_evaluations": [hd.sr.QualitativeEvaluation(c.concept(), v.concept()) for c, v in evaluations]
        or None,
    }


def scoord_rectangle(box: tuple[float, float, float, float]) -> np.ndarray:
    """Closed POLYLINE (column, row) of a stored-image box in continuous coordinates (pixel centre = +0.5)."""
    r0, c0, r1, c1 = box
    return np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=np.float64)


def _finding_groups(context: ResultContext, study_uid: str, analysed: Mapping[tuple[str, str], AnalysedView],
                    exam: ExamAnalysis, boxes: Mapping[str, tuple[float, float, float, float]]) -> list[Any]:
    groups = []
    for finding in exam.findings:
        for view, region in sorted(finding.regions.items()):
            source = analysed[(finding.laterality, view)].source.header
            tracking = f"F{finding.finding_id}-{finding.laterality}{view}"
            image = hd.sr.SourceImageForRegion(str(source.SOPClassUID), str(source.SOPInstanceUID))
            roi = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                    graphic_data=scoord_rectangle(boxes[tracking]), source_image=image)
            common = _common(context, study_uid, tracking, FINDING_TYPE[finding.kind], SITE[finding.laterality],
                             [(CERTAINTY, region.score, PERCENT),
                              (DISTANCE_FROM_NIPPLE, round(region.depth_mm, 1), MM)],
                             [])
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=roi, **common))
    return groups


def _density_groups(context: ResultContext, study_uid: str, exam: ExamAnalysis) -> list[Any]:
    groups = []
    for breast in exam.density.breasts:
        common = _common(context, study_uid, f"density-{breast.laterality}", COMPOSITION_TYPE, SITE[breast.laterality],
                         [(PERCENT_FIBROGLANDULAR, round(breast.percent_dense, 1), PERCENT)],
                         [(BREAST_COMPOSITION, COMPOSITION[breast.category])])
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
    common = _common(context, study_uid, "exam", MAMMOGRAPHY, BOTH_BREASTS, [(EXAM_SCORE, exam.exam_score, SCORE)],
                     [(BREAST_COMPOSITION, COMPOSITION[exam.density.category])])
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
    return groups


def build_sr(context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
             boxes: Mapping[str, tuple[float, float, float, float]]) -> Dataset:
    """The Comprehensive 3D SR of a mammography exam; *boxes*: tracking id -> stored-image box.

    Raises:
        ModelError: highdicom rejects the content (its message kept).
    """
    headers = [a.source.header for _, a in sorted(analysed.items())]
    study_uid = str(headers[0].StudyInstanceUID)
    series_uid, sop_uid = context.uids(study_uid, "sr")
    try:
        groups = _finding_groups(context, study_uid, analysed, exam, boxes) + _density_groups(context, study_uid, exam)
        report = hd.sr.MeasurementReport(observation_context=device_observer(context),
                                         procedure_reported=SCREENING_MAMMOGRAPHY.concept(),
                                         imaging_measurements=groups)
        sr = hd.sr.Comprehensive3DSR(
            evidence=headers, content=report, series_instance_uid=series_uid,
            series_number=context.series_number("sr"), sop_instance_uid=sop_uid, instance_number=1,
            manufacturer=context.manufacturer, is_complete=True, is_final=True, is_verified=False,
            institution_name=context.institution_name or None, contributing_equipment=[contributing_equipment(context)])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"mammography SR for study {study_uid}: {exc}") from exc
    return finish(sr, context, "sr")
