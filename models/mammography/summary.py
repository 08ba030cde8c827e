"""Summary Secondary Capture of a mammography exam: the four views as hung for reading, with the marks.

Layout: R CC | L CC above R MLO | L MLO, each image as stored (chest walls back to back), scaled to
:data:`VIEW_PX` rows; marks as coloured rectangles with their labels (kept inside their view); a
legend with density per breast and the mapping used, the exam score and every finding; a red banner
with the AI-result disclaimer and the algorithm. Text is wrapped to the width it is drawn in,
measured with the font it is drawn with (:func:`imaging.capture.display_font`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from imaging.capture import DrawnText, display_font
from imaging.display import wrap
from imaging.provenance import contributing_equipment, finish
from imaging.results import DISCLAIMER, DISCLAIMER_DISPLAY, ResultContext
from models.errors import ModelError
from models.mammography.analysis import ExamAnalysis
from models.mammography.density import DESCRIPTIONS

if TYPE_CHECKING:
    from models.mammography.pipeline import AnalysedView

LOGGER = logging.getLogger(__name__)

VIEW_PX, LEGEND_PX, BANNER_PX, LINE_PX, FONT_PX, PAD_PX = 640, 560, 44, 26, 19, 16
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


def legend_texts(exam: ExamAnalysis, x0: int, y0: int) -> list[tuple[DrawnText, tuple[int, int, int]]]:
    """The legend wrapped to :data:`LEGEND_PX` from (*x0*, *y0*): each line where it is drawn, and its colour."""
    font = display_font(FONT_PX)
    out = []
    y = y0
    for text, colour, indent in _legend(exam):
        for i, part in enumerate(wrap(text, font.getlength, LEGEND_PX - 2 * PAD_PX - indent - 14)):
            out.append((DrawnText(x0 + indent + (14 if i else 0), y, part, FONT_PX), colour))
            y += LINE_PX
    return out


def _mark_label(draw: ImageDraw.ImageDraw, text: str, rect: tuple[float, ...], tile: tuple[int, int, int, int],
                colour: tuple[int, int, int]) -> DrawnText:
    """A mark's label above its box (below it at the top of the view), kept inside the view *tile*."""
    font = display_font(FONT_PX)
    _, top, right, bottom = font.getbbox(text)
    x = max(tile[0], min(rect[0], tile[2] - right - 1))
    y = rect[1] - LINE_PX if rect[1] - LINE_PX + top >= tile[1] else rect[3] + 2
    y = min(y, tile[3] - bottom - 1)
    draw.text((x, y), text, fill=colour, font=font)
    return DrawnText(x, y, text, FONT_PX)


def render_layout(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                  boxes: Mapping[str, tuple[float, float, float, float]], title: str
                  ) -> tuple[np.ndarray, list[DrawnText]]:
    """The summary image and every text line drawn on it (see :func:`render_summary`)."""
    font = display_font(FONT_PX)
    tiles: dict[tuple[str, str], tuple[Image.Image, float]] = {k: _grey(v, VIEW_PX) for k, v in analysed.items()}
    col_w = [max((tiles[k][0].width for k in tiles if k[0] == side), default=VIEW_PX // 2) for side in ("R", "L")]
    width = col_w[0] + col_w[1] + LEGEND_PX
    banner = wrap(f"{DISCLAIMER_DISPLAY}   |   {title}", font.getlength, width - 2 * PAD_PX)
    banner_px = max(BANNER_PX, 20 + LINE_PX * len(banner))
    legend = legend_texts(exam, col_w[0] + col_w[1] + PAD_PX, banner_px + PAD_PX)
    height = max(banner_px + 2 * VIEW_PX, int(legend[-1][0].y) + LINE_PX + PAD_PX)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    texts: list[DrawnText] = []
    for key, (img, scale) in tiles.items():
        row, col = (0 if key[1] == "CC" else 1), (0 if key[0] == "R" else 1)
        x0 = col_w[0] - img.width if col == 0 else col_w[0]  # chest walls back to back at the middle
        y0 = banner_px + row * VIEW_PX
        tile = (x0, y0, x0 + img.width, y0 + img.height)
        canvas.paste(img, (x0, y0))
        name = f"{key[0]} {key[1]}"
        texts.append(DrawnText(x0 + 6 if col == 1 else x0 + img.width - 6 - font.getlength(name), y0 + 4, name))
        draw.text((texts[-1].x, texts[-1].y), name, fill=(255, 255, 0), font=font)
        for f in exam.findings:
            box = boxes.get(f"F{f.finding_id}-{key[0]}{key[1]}")
            if box is None:
                continue
            r0, c0, r1, c1 = (v * scale for v in box)
            rect = (x0 + c0 - 3, y0 + r0 - 3, x0 + c1 + 3, y0 + r1 + 3)
            draw.rectangle(rect, outline=COLOURS[f.kind], width=2)
            texts.append(_mark_label(draw, f"F{f.finding_id} {f.score}", rect, tile, COLOURS[f.kind]))
    draw.rectangle((0, 0, width, banner_px - 1), fill=(170, 0, 0))
    for i, line in enumerate(banner):
        texts.append(DrawnText(PAD_PX, 10 + i * LINE_PX, line))
        draw.text((texts[-1].x, texts[-1].y), line, fill=(255, 255, 255), font=font)
    for text, colour in legend:
        texts.append(text)
        draw.text((text.x, text.y), text.text, fill=colour, font=font)
    return np.asarray(canvas, dtype=np.uint8), texts


def render_summary(analysed: Mapping[tuple[str, str], AnalysedView], exam: ExamAnalysis,
                   boxes: Mapping[str, tuple[float, float, float, float]], title: str) -> np.ndarray:
    """RGB uint8 summary image; *boxes*: tracking id (``F<n>-<side><view>``) -> stored-image box."""
    return render_layout(analysed, exam, boxes, title)[0]


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
