"""The pipeline's DICOM results: TID 1500 SR, one GSPS per analysed image, a summary Secondary Capture,
each written by :mod:`imaging` from the typed values built here and saved durably.

Coordinates: regions are found on the canonical working-resolution image; :func:`stored_box` maps them
to the stored source image (scaling by the resampling factor, then the canonical flips back through
:class:`models.mammography.orientation.Orientation`), in continuous pixel coordinates (the top-left
corner of the top-left pixel is (0, 0)).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from imaging.gsps import write_gsps
from imaging.provenance import save_result
from imaging.results import AlgorithmId, Mark, ResultContext
from models.mammography.analysis import ExamAnalysis, Finding
from models.mammography.density import MAPPING as DENSITY_MAPPING
from models.mammography.detection import Region
from models.mammography.sr import build_sr
from models.mammography.summary import build_summary
from models.pipeline import OutputFile, PipelineRequest

if TYPE_CHECKING:
    from models.mammography.pipeline import AnalysedView

LOGGER = logging.getLogger(__name__)

KIND_LABEL = {"mass": "mass", "calcification_cluster": "calc"}
#: The GSPS graphic layer (and content label) of the marks.
LAYER = "AIWS_MAMMO"


def stored_box(region: Region, view: AnalysedView) -> tuple[float, float, float, float]:
    """(row0, col0, row1, col1) of *region* in continuous coordinates of the stored source image."""
    src = view.source
    canon_shape = src.image.shape
    fr = canon_shape[0] / view.working_shape[0]
    fc = canon_shape[1] / view.working_shape[1]
    r0, c0, r1, c1 = region.box
    corners = [src.orientation.point_to_stored(r * fr, c * fc, canon_shape) for r, c in ((r0, c0), (r1, c1))]
    rows, cols = [p[0] for p in corners], [p[1] for p in corners]
    return min(rows), min(cols), max(rows), max(cols)


def finding_label(finding: Finding) -> str:
    linked = " CC+MLO" if finding.linked else ""
    return f"F{finding.finding_id} {KIND_LABEL[finding.kind]} {finding.score}{linked}"


def context_of(request: PipelineRequest, pipeline: str, version: str, calibration_note: str) -> ResultContext:
    return ResultContext(uid_root=request.uid_root, pipeline=pipeline, model_version=version,
                         manufacturer=request.manufacturer, institution_name=request.institution_name,
                         algorithm=AlgorithmId(pipeline, version, (("calibration", calibration_note),
                                                                   ("density_mapping", DENSITY_MAPPING))))


def gsps_files(request: PipelineRequest, context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView],
               exam: ExamAnalysis) -> list[OutputFile]:
    """One GSPS per analysed image with the marks of the findings drawn on it."""
    out = []
    for instance, (key, view) in enumerate(sorted(analysed.items()), start=1):
        marks = []
        for finding in exam.findings:
            region = finding.regions.get(key[1]) if finding.laterality == key[0] else None
            if region is not None:
                tracking = f"F{finding.finding_id}-{key[0]}{key[1]}"
                marks.append(Mark(stored_box(region, view), finding_label(finding), tracking,
                                  context.tracking_uid(request.study_uid, tracking)))
        gsps = write_gsps(view.source.header, marks, context, instance, layer=LAYER,
                          empty_text="AIWS mammography: no marks")
        out.append(OutputFile.of(save_result("gsps", gsps, request.out_dir)))
    return out


def stored_boxes(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis) -> dict[str, tuple[
        float, float, float, float]]:
    """Tracking id ``F<n>-<side><view>`` -> box of that finding on that stored image."""
    return {f"F{f.finding_id}-{f.laterality}{view}": stored_box(region, analysed[(f.laterality, view)])
            for f in exam.findings for view, region in f.regions.items()}


def write_results(request: PipelineRequest, context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView],
                  exam: ExamAnalysis) -> tuple[OutputFile, ...]:
    """Write the SR, one GSPS per analysed image and the summary SC into ``request.out_dir`` (SR first)."""
    boxes = stored_boxes(analysed, exam)
    files = [OutputFile.of(save_result("sr", build_sr(context, analysed, exam, boxes), request.out_dir))]
    files += gsps_files(request, context, analysed, exam)
    files.append(OutputFile.of(save_result("sc", build_summary(context, analysed, exam, boxes), request.out_dir)))
    return tuple(files)
