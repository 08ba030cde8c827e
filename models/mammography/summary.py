"""Summary Secondary Capture of a mammography exam: what the hanging shows, taken from the analysis.

The four views as hung for reading with the marks, a legend with density per breast and the mapping
used, the exam score and every finding, under a red banner with the AI-result disclaimer and the
algorithm. Drawn by :mod:`imaging.layouts.mammography`; the Secondary Capture around it is
:func:`imaging.sc.write_page_capture`'s.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset

from imaging.capture import DrawnText, LegendLine
from imaging.layouts.mammography import HungView, MammographyPage, PageMark, render_mammography_page
from imaging.results import ImageRef, RenderedPage, ResultContext
from imaging.sc import write_page_capture
from models.mammography.analysis import ExamAnalysis
from models.mammography.density import DESCRIPTIONS

if TYPE_CHECKING:
    from models.mammography.pipeline import AnalysedView

LOGGER = logging.getLogger(__name__)

COLOURS = {"mass": (255, 70, 70), "calcification_cluster": (60, 220, 255)}
HANGING = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def _legend(exam: ExamAnalysis) -> list[tuple[str, tuple[int, int, int], int]]:
    """(text, colour, indent px) of every legend line, before wrapping."""
    white, yellow = (255, 255, 255), (255, 255, 0)
    lines = [(f"Exam score {exam.exam_score}/10 (10 = most suspicious decile)", yellow, 0),
             (f"Density: BI-RADS {exam.density.category} ({DESCRIPTIONS[exam.density.category]})", white, 0)]
    for b in exam.density.breasts:
        side = "Right" if b.laterality == "R" else "Left"
        lines.append((f"{side} breast: {b.percent_dense:.1f} % dense area \u2192 {b.category}", white, 20))
    lines.append((exam.density.mapping, (190, 190, 190), 20))
    lines.append((f"Findings: {len(exam.findings)}" if exam.findings else "Findings: none marked", yellow, 0))
    for f in exam.findings:
        views = " and ".join(sorted(f.regions))
        kind = "mass" if f.kind == "mass" else "calcification cluster"
        side = "right" if f.laterality == "R" else "left"
        lines.append((f"F{f.finding_id}: {side} breast {kind}, score {f.score}/100, on {views}", COLOURS[f.kind], 20))
    return lines


def page_of(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
            boxes: Mapping[str, tuple[float, float, float, float]]) -> MammographyPage:
    """The views as stored with their marks (*boxes*: tracking id ``F<n>-<side><view>`` -> stored-image box)
    and the legend lines."""
    views = []
    for key, view in analysed.items():
        src = view.source
        marks = []
        for f in exam.findings:
            box = boxes.get(f"F{f.finding_id}-{key[0]}{key[1]}")
            if box is not None:
                marks.append(PageMark(box, f"F{f.finding_id} {f.score}", COLOURS[f.kind]))
        views.append(HungView(key[0], key[1], src.orientation.to_stored(src.image), src.window, tuple(marks)))
    return MammographyPage(tuple(views), tuple(LegendLine(t, c, i) for t, c, i in _legend(exam)))


def render_layout(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                  boxes: Mapping[str, tuple[float, float, float, float]], title: str
                  ) -> tuple[np.ndarray, list[DrawnText]]:
    """The summary image and every text line drawn on it (see :func:`render_summary`)."""
    return render_mammography_page(page_of(analysed, exam, boxes), title)


def render_summary(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                   boxes: Mapping[str, tuple[float, float, float, float]], title: str) -> np.ndarray:
    """RGB uint8 summary image; *boxes*: tracking id (``F<n>-<side><view>``) -> stored-image box."""
    return render_layout(analysed, exam, boxes, title)[0]


def build_summary(context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                  boxes: Mapping[str, tuple[float, float, float, float]]) -> Dataset:
    """The summary Secondary Capture (one instance, RGB) in a new series of the study: both breasts, four
    views side by side, so no single Patient Orientation or Laterality (both left empty).

    Raises:
        WriteError: the Secondary Capture cannot be built (highdicom's message kept).
    """
    ref = analysed[sorted(analysed)[0]].source.header
    pixels = render_summary(analysed, exam, boxes, f"AIWS {context.pipeline} {context.model_version}")
    sources = tuple(ImageRef(str(a.source.header.SOPClassUID), str(a.source.header.SOPInstanceUID))
                    for _, a in sorted(analysed.items()))
    return write_page_capture(RenderedPage(pixels, ref, sources), context)
