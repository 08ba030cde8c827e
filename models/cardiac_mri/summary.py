"""The cardiac summary image: ED and ES contours on mid-ventricular slices, the volume curve, the table.

Pure rendering (numpy + Pillow) to an RGB uint8 array; the DICOM Secondary Capture around it is
written by :mod:`imaging`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from models.cardiac_mri.findings import CardiacFindings

LABEL_COLOURS = {1: (255, 50, 50), 2: (50, 230, 50), 3: (60, 140, 255)}  # LV pool, LV myocardium, RV pool
DISCLAIMER = "AI result - not for primary diagnosis unless validated"
_TILE = 360
_WHITE = (255, 255, 255)


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
    hi = float(np.percentile(image, 99.5)) or 1.0
    grey = (np.clip(image / hi, 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    for lab, colour in LABEL_COLOURS.items():
        mask = labels == lab
        rgb[mask & ~ndimage.binary_erosion(mask)] = colour
    img = Image.fromarray(rgb).resize((_TILE, _TILE), Image.NEAREST)
    ImageDraw.Draw(img).text((8, 6), caption, fill=(255, 255, 0), font=ImageFont.load_default(size=18))
    return img


def _curve(findings: CardiacFindings, width: int, height: int) -> Image.Image:
    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=16)
    lv, rv = findings.lv_curve_ml, findings.rv_curve_ml
    vmax = max(float(lv.max()), float(rv.max()), 1.0) * 1.1
    n = len(lv)
    left, right, top, bottom = 60, width - 20, 30, height - 40

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + (right - left) * i / max(n - 1, 1), bottom - (bottom - top) * v / vmax

    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    for curve, colour in ((lv, LABEL_COLOURS[1]), (rv, LABEL_COLOURS[3])):
        if curve.max() > 0:
            draw.line([xy(i, float(v)) for i, v in enumerate(curve)], fill=colour, width=3)
    for phase, name in ((findings.function.lv.ed_phase, "ED"), (findings.function.lv.es_phase, "ES")):
        x, y = xy(phase, float(lv[phase]))
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), outline=_WHITE, width=2)
        draw.text((x + 6, y - 20), name, fill=_WHITE, font=font)
    draw.text((left, 6), "volume (ml) over the cardiac cycle: LV red, RV blue", fill=_WHITE, font=font)
    draw.text((left, bottom + 8), f"phase 1 .. {n}", fill=_WHITE, font=font)
    draw.text((4, top), f"{vmax:.0f}", fill=_WHITE, font=font)
    return img


def table_rows(findings: CardiacFindings) -> list[tuple[str, str, str]]:
    """(label, value with unit, reference flag) of every measure."""
    return [(m.label, f"{m.value:.1f} {m.unit}", f"[{m.flag.value}]" if m.flag is not None else "")
            for m in findings.measures()]


def render_summary(images: np.ndarray, findings: CardiacFindings) -> np.ndarray:
    """RGB uint8: ED (top) and ES (bottom) contours on two mid slices, curve on the right, table below."""
    ed, es = findings.function.lv.ed_phase, findings.function.lv.es_phase
    slices = mid_slices(findings.labels[ed])
    box = heart_box(findings.labels[ed])
    tiles = [[_tile(images[ph, k][box], findings.labels[ph, k][box], f"{name} slice {k + 1}") for k in slices]
             for ph, name in ((ed, "ED"), (es, "ES"))]
    rows = table_rows(findings)
    width = _TILE * len(slices) + 520
    height = 2 * _TILE + 30 + 28 * (len(rows) + 3)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas.paste(tile, (c * _TILE, r * _TILE))
    canvas.paste(_curve(findings, 500, 2 * _TILE), (_TILE * len(slices) + 10, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=19)
    y = 2 * _TILE + 16
    draw.text((16, y), f"Cardiac MRI function (method of discs) - {findings.algorithm}", fill=(255, 200, 0), font=font)
    for label, value, flag in rows:
        y += 28
        draw.text((16, y), label, fill=_WHITE, font=font)
        draw.text((470, y), value, fill=_WHITE, font=font, anchor="ra")
        draw.text((490, y), flag, fill=(255, 120, 120) if flag not in ("", "[normal]") else _WHITE, font=font)
    notes = ("Ranges: Kawel-Boehm 2015, mean +/- 2 SD by sex. Papillary muscles in the blood pool.", DISCLAIMER)
    for note, colour in zip(notes, (_WHITE, (255, 80, 80))):
        y += 28
        draw.text((16, y), note, fill=colour, font=font)
    return np.asarray(canvas, dtype=np.uint8)
