"""The mammography TID 1500 Measurement Report: one SR for the four views of a study.

The findings are handed to :func:`imaging.sr.write_sr` with the analysed images as its source (a
screening study has four images, each finding region sitting on its own image, which the region's
``slice_index`` names). Groups:
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
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from imaging.results import Code, Finding, Graphic, ImageRegion2D, Measurement, QualitativeEvaluation, ResultContext
from imaging.sr import write_sr
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


def box_region(image_index: int, box: tuple[float, float, float, float]) -> ImageRegion2D:
    """A closed rectangle (POLYLINE) on image *image_index* from a stored-image box in continuous coordinates
    (the top-left corner of the top-left pixel is (0, 0)); the region's points are pixel-centre indices."""
    r0, c0, r1, c1 = (v - 0.5 for v in box)
    return ImageRegion2D(image_index, Graphic.POLYLINE, ((r0, c0), (r0, c1), (r1, c1), (r1, c0)))


def sr_findings(order: Sequence[tuple[str, str]], exam: ExamAnalysis,
                boxes: Mapping[str, tuple[float, float, float, float]]) -> list[Finding]:
    """The report's findings: per finding and view (on image ``order.index(view)``), per breast, the exam."""
    out = []
    for finding in exam.findings:
        for view, region in sorted(finding.regions.items()):
            tracking = f"F{finding.finding_id}-{finding.laterality}{view}"
            out.append(Finding(tracking, FINDING_TYPE[finding.kind], SITE[finding.laterality],
                               (Measurement(CERTAINTY, float(region.score), PERCENT),
                                Measurement(DISTANCE_FROM_NIPPLE, round(region.depth_mm, 1), MM)),
                               region=box_region(order.index((finding.laterality, view)), boxes[tracking])))
    for breast in exam.density.breasts:
        out.append(Finding(f"density-{breast.laterality}", COMPOSITION_TYPE, SITE[breast.laterality],
                           (Measurement(PERCENT_FIBROGLANDULAR, round(breast.percent_dense, 1), PERCENT),),
                           (QualitativeEvaluation(BREAST_COMPOSITION, COMPOSITION[breast.category]),)))
    out.append(Finding("exam", MAMMOGRAPHY, BOTH_BREASTS, (Measurement(EXAM_SCORE, float(exam.exam_score), SCORE),),
                       (QualitativeEvaluation(BREAST_COMPOSITION, COMPOSITION[exam.density.category]),)))
    return out


def build_sr(context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
             boxes: Mapping[str, tuple[float, float, float, float]]) -> Dataset:
    """The Comprehensive 3D SR of a mammography exam; *boxes*: tracking id -> stored-image box.

    Raises:
        WriteError: the report cannot be built (highdicom's message kept).
    """
    order = sorted(analysed)
    images = tuple(analysed[key].source.mammogram for key in order)
    return write_sr(images, sr_findings(order, exam, boxes), context, procedure=SCREENING_MAMMOGRAPHY)
