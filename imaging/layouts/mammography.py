"""The mammography page: four views as hung for reading, with the marks and a legend.

Layout: R CC | L CC above R MLO | L MLO, each image as stored (chest walls back to back), scaled to
:data:`VIEW_PX` rows; marks as coloured rectangles with their labels (kept inside their view); the
legend lines as the pipeline gives them (text, colour, indent), wrapped to :data:`LEGEND_PX`; a red
banner with the AI-result disclaimer and the algorithm. Text is wrapped to the width it is drawn in,
measured with the font it is drawn with (:func:`imaging.capture.display_font`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from imaging.capture import DrawnText, LegendLine, display_font
from imaging.display import wrap
from imaging.results import DISCLAIMER_DISPLAY

VIEW_PX, LEGEND_PX, BANNER_PX, LINE_PX, FONT_PX, PAD_PX = 640, 560, 44, 26, 19, 16
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class PageMark:
    """A mark on a view: *box* ``(row0, col0, row1, col1)`` in stored-image coordinates, its label and colour."""

    box: tuple[float, float, float, float]
    text: str
    colour: Colour


@dataclass(frozen=True, eq=False)
class HungView:
    """One view as stored: *laterality* ``R``/``L``, *view* ``CC``/``MLO``, the stored *image* (brighter =
    denser) with its display *window* (centre, width), and the *marks* drawn on it in order."""

    laterality: str
    view: str
    image: np.ndarray = field(repr=False)
    window: tuple[float, float]
    marks: tuple[PageMark, ...] = ()


@dataclass(frozen=True, eq=False)
class MammographyPage:
    """The views to hang and the legend lines (indents in px, before wrapping)."""

    views: tuple[HungView, ...]
    legend: tuple[LegendLine, ...]


def _grey(view: HungView, height: int) -> tuple[Image.Image, float]:
    """The stored image windowed to 8 bits and scaled to *height* rows; returns (image, scale)."""
    stored = view.image
    centre, width = view.window
    grey = np.clip((stored - (centre - width / 2.0)) / width * 255.0, 0, 255).astype(np.uint8)
    scale = height / grey.shape[0]
    img = Image.fromarray(grey).resize((max(1, int(round(grey.shape[1] * scale))), height), Image.BILINEAR)
    return img.convert("RGB"), scale


def legend_texts(legend: tuple[LegendLine, ...], x0: int, y0: int) -> list[tuple[DrawnText, Colour]]:
    """The legend wrapped to :data:`LEGEND_PX` from (*x0*, *y0*): each line where it is drawn, and its colour."""
    font = display_font(FONT_PX)
    out = []
    y = y0
    for line in legend:
        for i, part in enumerate(wrap(line.text, font.getlength, LEGEND_PX - 2 * PAD_PX - line.indent_px - 14)):
            out.append((DrawnText(x0 + line.indent_px + (14 if i else 0), y, part, FONT_PX), line.colour))
            y += LINE_PX
    return out


def _mark_label(draw: ImageDraw.ImageDraw, text: str, rect: tuple[float, ...], tile: tuple[int, int, int, int],
                colour: Colour) -> DrawnText:
    """A mark's label above its box (below it at the top of the view), kept inside the view *tile*."""
    font = display_font(FONT_PX)
    _, top, right, bottom = font.getbbox(text)
    x = max(tile[0], min(rect[0], tile[2] - right - 1))
    y = rect[1] - LINE_PX if rect[1] - LINE_PX + top >= tile[1] else rect[3] + 2
    y = min(y, tile[3] - bottom - 1)
    draw.text((x, y), text, fill=colour, font=font)
    return DrawnText(x, y, text, FONT_PX)


def render_mammography_page(page: MammographyPage, title: str) -> tuple[np.ndarray, list[DrawnText]]:
    """The hanging (RGB uint8) and every text line drawn on it."""
    font = display_font(FONT_PX)
    tiles = {(v.laterality, v.view): (v, *_grey(v, VIEW_PX)) for v in page.views}
    col_w = [max((tiles[k][1].width for k in tiles if k[0] == side), default=VIEW_PX // 2) for side in ("R", "L")]
    width = col_w[0] + col_w[1] + LEGEND_PX
    banner = wrap(f"{DISCLAIMER_DISPLAY}   |   {title}", font.getlength, width - 2 * PAD_PX)
    banner_px = max(BANNER_PX, 20 + LINE_PX * len(banner))
    legend = legend_texts(page.legend, col_w[0] + col_w[1] + PAD_PX, banner_px + PAD_PX)
    height = max(banner_px + 2 * VIEW_PX, int(legend[-1][0].y) + LINE_PX + PAD_PX)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    texts: list[DrawnText] = []
    for key, (view, img, scale) in tiles.items():
        row, col = (0 if key[1] == "CC" else 1), (0 if key[0] == "R" else 1)
        x0 = col_w[0] - img.width if col == 0 else col_w[0]  # chest walls back to back at the middle
        y0 = banner_px + row * VIEW_PX
        tile = (x0, y0, x0 + img.width, y0 + img.height)
        canvas.paste(img, (x0, y0))
        name = f"{key[0]} {key[1]}"
        texts.append(DrawnText(x0 + 6 if col == 1 else x0 + img.width - 6 - font.getlength(name), y0 + 4, name))
        draw.text((texts[-1].x, texts[-1].y), name, fill=(255, 255, 0), font=font)
        for mark in view.marks:
            r0, c0, r1, c1 = (v * scale for v in mark.box)
            rect = (x0 + c0 - 3, y0 + r0 - 3, x0 + c1 + 3, y0 + r1 + 3)
            draw.rectangle(rect, outline=mark.colour, width=2)
            texts.append(_mark_label(draw, mark.text, rect, tile, mark.colour))
    draw.rectangle((0, 0, width, banner_px - 1), fill=(170, 0, 0))
    for i, line in enumerate(banner):
        texts.append(DrawnText(PAD_PX, 10 + i * LINE_PX, line))
        draw.text((texts[-1].x, texts[-1].y), line, fill=(255, 255, 255), font=font)
    for text, colour in legend:
        texts.append(text)
        draw.text((text.x, text.y), text.text, fill=colour, font=font)
    return np.asarray(canvas, dtype=np.uint8), texts
