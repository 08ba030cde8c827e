"""Summary Secondary Capture of a mammography exam: the four views as hung for reading, with the marks.

Layout: R CC | L CC above R MLO | L MLO, each image as stored (chest walls back to back), scaled to
:data:`VIEW_PX` rows; marks as coloured rectangles with their labels; a legend with density per
breast, the exam score and every finding; a red banner with the AI-result disclaimer.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from imaging.provenance import contributing_equipment, finish
from imaging.results import DISCLAIMER, DISCLAIMER_DISPLAY, ResultContext
from models.errors import ModelError
from models.mammography.analysis import ExamAnalysis
from models.mammography.density import DESCRIPTIONS

if TYPE_CHECKING:
    from models.mammography.pipeline import AnalysedView

LOGGER = logging.getLogger(__name__)

VIEW_PX, LEGEND_PX, BANNER_PX, LINE_PX, FONT_PX = 640, 560, 44, 26, 19
COLOURS = {"mass": (255, 70, 70), "calcification_cluster": (60, 220, 255)}
HANGING = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def _grey(view: AnalysedView, height: int) -> tuple[Image.Image, float]:
    """The stored image windowed to 8 bits and scaled to *height* rows; returns (image, scale)."""
    src = view.source
    stored = src.orientation.to_stored(src.image)
    centre, width = src.window
    grey = np.clip((stored - (centre - width / 2.0)) / width * 255.0, 0, 255).astype(np.uint8)
    scale = height / grey.shape[0]
    img = Image.fromarray(grey).resize((max(1, int(round(grey.shape[1] * scale))), height), Image.BILINEAR)
    return img.convert("RGB"), scale


def _legend(exam: ExamAnalysis) -> list[tuple[str, tuple[int, int, int]]]:
    lines = [(f"Exam score {exam.exam_score}/10 (10 = most suspicious decile)", (255, 255, 0)),
             (f"Density: BI-RADS {exam.density.category} ({DESCRIPTIONS[exam.density.category]})", (255, 255, 255))]
    for b in exam.density.breasts:
        lines.append((f"  {b.laterality}: {b.percent_dense:.1f} % dense area -> {b.category}", (255, 255, 255)))
    lines.append((f"Findings: {len(exam.findings)}" if exam.findings else "Findings: none marked", (255, 255, 0)))
    for f in exam.findings:
        views = "+".join(sorted(f.regions))
        kind = "mass" if f.kind == "mass" else "calcification cluster"
        lines.append((f"  F{f.finding_id} {f.laterality} {kind}, score {f.score}, {views}", COLOURS[f.kind]))
    return lines


def render_summary(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                   boxes: Mapping[str, tuple[float, float, float, float]], title: str) -> np.ndarray:
    """RGB uint8 summary image; *boxes*: tracking id (``F<n>-<side><view>``) -> stored-image box."""
    font = ImageFont.load_default(size=FONT_PX)
    tiles: dict[tuple[str, str], tuple[Image.Image, float]] = {k: _grey(v, VIEW_PX) for k, v in analysed.items()}
    col_w = [max((tiles[k][0].width for k in tiles if k[0] == side), default=VIEW_PX // 2) for side in ("R", "L")]
    width = col_w[0] + col_w[1] + LEGEND_PX
    height = BANNER_PX + 2 * VIEW_PX
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for key, (img, scale) in tiles.items():
        row, col = (0 if key[1] == "CC" else 1), (0 if key[0] == "R" else 1)
        x0 = col_w[0] - img.width if col == 0 else col_w[0]  # chest walls back to back at the middle
        y0 = BANNER_PX + row * VIEW_PX
        canvas.paste(img, (x0, y0))
        draw.text((x0 + 6, y0 + 4) if col == 1 else (x0 + img.width - 70, y0 + 4), f"{key[0]} {key[1]}",
                  fill=(255, 255, 0), font=font)
        for f in exam.findings:
            box = boxes.get(f"F{f.finding_id}-{key[0]}{key[1]}")
            if box is None:
                continue
            r0, c0, r1, c1 = (v * scale for v in box)
            rect = (x0 + c0 - 3, y0 + r0 - 3, x0 + c1 + 3, y0 + r1 + 3)
            draw.rectangle(rect, outline=COLOURS[f.kind], width=2)
            draw.text((rect[0], max(y0, rect[1] - LINE_PX)), f"F{f.finding_id} {f.score}", fill=COLOURS[f.kind],
                      font=font)
    draw.rectangle((0, 0, width, BANNER_PX - 1), fill=(170, 0, 0))
    draw.text((12, 10), f"{title} - {DISCLAIMER_DISPLAY.replace(chr(0x2014), '-')}", fill=(255, 255, 255), font=font)
    y = BANNER_PX + 16
    for text, colour in _legend(exam):
        draw.text((col_w[0] + col_w[1] + 16, y), text[:52], fill=colour, font=font)
        y += LINE_PX
    return np.asarray(canvas, dtype=np.uint8)


def build_summary(context: ResultContext, analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                  boxes: Mapping[str, tuple[float, float, float, float]]) -> Dataset:
    """The summary Secondary Capture (one instance, RGB) in a new series of the study.

    Raises:
        ModelError: highdicom rejects the content.
    """
    ref = analysed[sorted(analysed)[0]].source.header
    series_uid, sop_uid = context.uids(str(ref.StudyInstanceUID), "sc")
    pixels = render_summary(analysed, exam, boxes, f"AIWS {context.pipeline} {context.model_version}")
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=context.series_number("sc"),
            sop_instance_uid=sop_uid, instance_number=1, manufacturer=context.manufacturer,
            patient_orientation=("A", "R"), transfer_syntax_uid=ExplicitVRLittleEndian,
            contributing_equipment=[contributing_equipment(context)])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"mammography summary for study {ref.StudyInstanceUID}: {exc}") from exc
    sc.PatientOrientation = ""  # four views side by side: no single orientation (Type 2C, empty)
    sc.Laterality = ""  # both breasts: General Series Laterality has no value for "both" (Type 2C, empty)
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = DISCLAIMER
    sc.SourceImageSequence = [_reference(a.source.header) for _, a in sorted(analysed.items())]
    return finish(sc, context, "sc")


def _reference(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item
