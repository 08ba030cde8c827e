"""The cardiac function page: ED and ES contours on mid-ventricular slices, the volume curve, the table.

Pure rendering (numpy + Pillow) of a :class:`CardiacPage` to an RGB uint8 array; the Secondary
Capture around it is :func:`imaging.sc.write_page_capture`'s. A red banner on top states the AI-result
disclaimer and the algorithm; the table's values come as text (human units, one precision per
quantity: :mod:`imaging.display`), and every text line is wrapped to the width it is drawn in with
the font it is drawn with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from imaging.capture import DrawnText, display_font
from imaging.display import wrap
from imaging.results import DISCLAIMER_DISPLAY

LABEL_COLOURS = {1: (255, 50, 50), 2: (50, 230, 50), 3: (60, 140, 255)}  # LV pool, LV myocardium, RV pool
DISCLAIMER = DISCLAIMER_DISPLAY
_TILE, _CURVE_W, _TABLE_W, _LINE, _FONT, _PAD = 360, 500, 520, 28, 19, 16
_WHITE = (255, 255, 255)


@dataclass(frozen=True, eq=False)
class CardiacPage:
    """What the cardiac page shows. *images* and *labels*: (phase, slice, row, column) cine magnitudes
    and labels (1 LV blood pool, 2 LV myocardium, 3 RV blood pool); *ed_phase*/*es_phase*: 0-based;
    *lv_curve_ml*/*rv_curve_ml*: volume per phase; *rows*: (label, value with unit, reference flag) of
    the table; *algorithm*: named in the heading; *bsa_missing*: say why no indexed values are shown."""

    images: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    ed_phase: int
    es_phase: int
    lv_curve_ml: np.ndarray = field(repr=False)
    rv_curve_ml: np.ndarray = field(repr=False)
    rows: tuple[tuple[str, str, str], ...]
    algorithm: str
    bsa_missing: bool = False


def mid_slices(labels_ed: np.ndarray, count: int = 2) -> list[int]:
    """The *count* slices around the middle of the slices that show LV blood pool at end-diastole."""
    with_lv = [k for k in range(labels_ed.shape[0]) if (labels_ed[k] == 1).any()]
    if not with_lv:
        return [labels_ed.shape[0] // 2]
    mid = len(with_lv) // 2
    start = max(0, mid - count // 2)
    return with_lv[start:start + count]


def heart_box(labels: np.ndarray, margin: float = 0.6) -> tuple[slice, slice]:
    """A square (rows, columns) window around every labelled pixel of (…, rows, columns) *labels*."""
    rows, cols = labels.shape[-2:]
    found = np.nonzero((labels > 0).reshape(-1, rows, cols).any(axis=0))
    if not found[0].size:
        return slice(0, rows), slice(0, cols)
    centre = [(int(found[i].min()) + int(found[i].max())) / 2 for i in (0, 1)]
    half = (1 + margin) * max(int(np.ptp(found[0])), int(np.ptp(found[1])), 8) / 2
    r0, c0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - half))
    return slice(r0, int(min(rows, centre[0] + half))), slice(c0, int(min(cols, centre[1] + half)))


def _tile(image: np.ndarray, labels: np.ndarray, caption: str) -> Image.Image:
    """The slice with its contours, enlarged to :data:`_TILE` px, captioned at (8, 6) in 18 px."""
    hi = float(np.percentile(image, 99.5)) or 1.0
    grey = (np.clip(image / hi, 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    for lab, colour in LABEL_COLOURS.items():
        mask = labels == lab
        rgb[mask & ~ndimage.binary_erosion(mask)] = colour
    img = Image.fromarray(rgb).resize((_TILE, _TILE), Image.NEAREST)
    ImageDraw.Draw(img).text((8, 6), caption, fill=(255, 255, 0), font=display_font(18))
    return img


def _curve(page: CardiacPage, width: int, height: int) -> tuple[Image.Image, list[DrawnText]]:
    """The LV and RV volume curves with ED and ES marked; the texts drawn, in panel coordinates."""
    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = display_font(16)
    texts: list[DrawnText] = []
    lv, rv = page.lv_curve_ml, page.rv_curve_ml
    vmax = max(float(lv.max()), float(rv.max()), 1.0) * 1.1
    n = len(lv)
    left, right, top, bottom = 60, width - 20, 30, height - 40

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + (right - left) * i / max(n - 1, 1), bottom - (bottom - top) * v / vmax

    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    for curve, colour in ((lv, LABEL_COLOURS[1]), (rv, LABEL_COLOURS[3])):
        if curve.max() > 0:
            draw.line([xy(i, float(v)) for i, v in enumerate(curve)], fill=colour, width=3)
    for phase, name in ((page.ed_phase, "ED"), (page.es_phase, "ES")):
        x, y = xy(phase, float(lv[phase]))
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=_WHITE, width=2)
        texts.append(DrawnText(min(x + 6, width - 4 - font.getlength(name)), y - 20, name, 16))
    texts += [DrawnText(left, 6, "Volume (ml) per phase: LV red, RV blue", 16),
              DrawnText(left, bottom + 8, f"phase 1 to {n}", 16), DrawnText(4, top, f"{vmax:.0f}", 16)]
    for text in texts:
        draw.text((text.x, text.y), text.text, fill=_WHITE, font=font)
    return img, texts


def render_cardiac_page(page: CardiacPage, title: str = "") -> tuple[np.ndarray, list[DrawnText]]:
    """RGB uint8: a banner (disclaimer, *title*), ED (top) and ES (bottom) contours on two mid slices,
    the volume curve on the right, the table of measures below; and every text line drawn on it."""
    images, labels = page.images, page.labels
    ed, es = page.ed_phase, page.es_phase
    slices = mid_slices(labels[ed])
    box = heart_box(labels[ed])
    font = display_font(_FONT)
    width = _TILE * len(slices) + 20 + _CURVE_W
    banner = wrap(f"{DISCLAIMER_DISPLAY}   |   {title}" if title else DISCLAIMER_DISPLAY, font.getlength,
                  width - 2 * _PAD)
    top = max(44, 20 + 26 * len(banner))
    texts = [DrawnText(_PAD, 10 + 26 * i, line) for i, line in enumerate(banner)]
    heading = wrap(f"Cardiac MRI function (method of discs) - {page.algorithm}", font.getlength, width - 2 * _PAD)
    no_bsa = ("No indexed values: body surface area not computed (needs Patient's Size 0.3-2.5 m and "
              "Patient's Weight 1-400 kg in the header).") if page.bsa_missing else ""
    notes = [(line, colour) for note, colour in (
        ("Ranges: Kawel-Boehm 2015, mean \u00b1 2 SD by sex. Papillary muscles in the blood pool.", _WHITE),
        (no_bsa, (255, 200, 0)), (DISCLAIMER_DISPLAY, (255, 80, 80)))
        if note for line in wrap(note, font.getlength, width - 2 * _PAD)]
    rows = page.rows
    height = top + 2 * _TILE + 30 + _LINE * (len(rows) + len(heading) + len(notes) + 1)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    for r, (ph, name) in enumerate(((ed, "ED"), (es, "ES"))):
        for c, k in enumerate(slices):
            canvas.paste(_tile(images[ph, k][box], labels[ph, k][box], f"{name} slice {k + 1}"),
                         (c * _TILE, top + r * _TILE))
            texts.append(DrawnText(c * _TILE + 8, top + r * _TILE + 6, f"{name} slice {k + 1}", 18))
    curve, curve_texts = _curve(page, _CURVE_W, 2 * _TILE)
    x_curve = _TILE * len(slices) + 10
    canvas.paste(curve, (x_curve, top))
    texts += [DrawnText(t.x + x_curve, t.y + top, t.text, t.size) for t in curve_texts]
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, width - 1, top - 1), fill=(170, 0, 0))
    for text in texts[:len(banner)]:
        draw.text((text.x, text.y), text.text, fill=_WHITE, font=font)
    y = top + 2 * _TILE + 16 - _LINE
    for line in heading:
        y += _LINE
        texts.append(DrawnText(_PAD, y, line))
        draw.text((_PAD, y), line, fill=(255, 200, 0), font=font)
    for label, value, flag in rows:
        y += _LINE
        texts += [DrawnText(_PAD, y, label), DrawnText(470 - font.getlength(value), y, value), DrawnText(490, y, flag)]
        draw.text((_PAD, y), label, fill=_WHITE, font=font)
        draw.text((470, y), value, fill=_WHITE, font=font, anchor="ra")
        draw.text((490, y), flag, fill=(255, 120, 120) if flag not in ("", "[normal]") else _WHITE, font=font)
    for note, colour in notes:
        y += _LINE
        texts.append(DrawnText(_PAD, y, note))
        draw.text((_PAD, y), note, fill=colour, font=font)
    return np.asarray(canvas, dtype=np.uint8), texts
