"""A page of text lines: white on black, the first line in amber, readable at 1:1 (the echo summary)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from imaging.capture import DrawnText, display_font
from imaging.display import wrap

WIDTH_PX, LINE_PX, FONT_PX, MARGIN_PX = 1024, 30, 22, 20


def render_text_page(lines: list[str]) -> tuple[np.ndarray, list[DrawnText]]:
    """White-on-black text (the first line in amber), RGB uint8, readable at 1:1; each line wrapped to
    the page width (continuations indented; a line's leading spaces indent it); returns the page and
    every text line drawn."""
    font = display_font(FONT_PX)
    drawn: list[tuple[DrawnText, tuple[int, int, int]]] = []
    for i, line in enumerate(lines):
        colour = (255, 200, 0) if i == 0 else (255, 255, 255)
        indent = len(line) - len(line.lstrip(" "))
        x = MARGIN_PX + font.getlength(line[:indent])
        for j, part in enumerate(wrap(line.strip(), font.getlength, WIDTH_PX - x - MARGIN_PX - 24)):
            drawn.append((DrawnText(x + (24 if j else 0), 20 + len(drawn) * LINE_PX, part, FONT_PX), colour))
    img = Image.new("RGB", (WIDTH_PX, max(256, 40 + LINE_PX * len(drawn))), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for text, colour in drawn:
        draw.text((text.x, text.y), text.text, fill=colour, font=font)
    return np.asarray(img, dtype=np.uint8), [t for t, _ in drawn]
