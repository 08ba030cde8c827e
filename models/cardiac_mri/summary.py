"""The cardiac summary page: what it shows, taken from the findings; drawn by :mod:`imaging.layouts.cardiac`.

ED and ES contours on mid-ventricular slices, the volume curve, the table of measures in human units
at one precision per quantity (:mod:`imaging.display`) with their reference flags, under a red banner
with the AI-result disclaimer and the algorithm. The Secondary Capture around it is :mod:`imaging`'s.
"""
from __future__ import annotations

import numpy as np

from imaging.capture import DrawnText
from imaging.display import value_text
from imaging.layouts.cardiac import LABEL_COLOURS, CardiacPage, heart_box, mid_slices, render_cardiac_page
from models.cardiac_mri.findings import CardiacFindings

__all__ = ["LABEL_COLOURS", "heart_box", "mid_slices", "page_of", "render_layout", "render_summary", "table_rows"]


def table_rows(findings: CardiacFindings) -> list[tuple[str, str, str]]:
    """(label, value with unit, reference flag) of every measure."""
    return [(m.label, value_text(m.value, m.unit), f"[{m.flag.value}]" if m.flag is not None else "")
            for m in findings.measures()]


def page_of(images: np.ndarray, findings: CardiacFindings) -> CardiacPage:
    """The page's content: cine *images* (phase, slice, row, column) with the findings' labels and measures."""
    lv = findings.function.lv
    return CardiacPage(images=images, labels=findings.labels, ed_phase=lv.ed_phase, es_phase=lv.es_phase,
                       lv_curve_ml=findings.lv_curve_ml, rv_curve_ml=findings.rv_curve_ml,
                       rows=tuple(table_rows(findings)), algorithm=findings.algorithm,
                       bsa_missing=findings.function.bsa_m2 is None)


def render_layout(images: np.ndarray, findings: CardiacFindings, title: str = ""
                  ) -> tuple[np.ndarray, list[DrawnText]]:
    """The summary page (see :func:`render_summary`) and every text line drawn on it."""
    return render_cardiac_page(page_of(images, findings), title)


def render_summary(images: np.ndarray, findings: CardiacFindings, title: str = "") -> np.ndarray:
    """RGB uint8: a banner (disclaimer, *title*), ED (top) and ES (bottom) contours on two mid slices,
    the volume curve on the right, the table of measures below."""
    return render_layout(images, findings, title)[0]
