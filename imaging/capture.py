"""Secondary Capture summary: key images with the findings drawn, and a legend, readable at 1:1.

Each key image is one slice of the source (windowed greyscale), scaled by
:func:`key_image_layout`, with segment outlines and region shapes in a
per-finding colour, a yellow ring marker centred on each finding with its number, a red
banner stating "AI result — not for primary diagnosis unless validated" with the algorithm,
and a legend listing exactly the findings drawn on that image (then the exam-level findings, and
where the other findings are) with their measurements and evaluations in human units
(:mod:`imaging.display`). Every text line is wrapped to the width it is drawn in, measured with the
font it is drawn with (DejaVu Sans), so nothing runs past the image's edge.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from scipy import ndimage

from imaging.display import finding_details, finding_heading, font_path, wrap
from imaging.errors import WriteError
from imaging.mammo import Mammogram
from imaging.results import DISCLAIMER_DISPLAY, Finding, Graphic, ImageRef, RenderedPage, ResultContext, Segment
from imaging.sc import write_page_capture
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

MARKER_COLOUR = (255, 255, 0)
PALETTE = ((255, 80, 80), (80, 230, 80), (80, 170, 255), (255, 90, 255), (255, 165, 0), (0, 230, 230))
BANNER_PX, LEGEND_PX, LINE_PX, PAD_PX, FONT_PX = 48, 600, 26, 16, 19
MAX_IMAGE_PX, MIN_IMAGE_PX = 1024, 512
MAX_LEGEND_LINES = 48
DETAIL_INDENT_PX, WRAP_INDENT_PX = 28, 14
DETAIL_COLOUR, NOTE_COLOUR, WHITE = (230, 230, 230), (190, 190, 190), (255, 255, 255)
#: what qualifies the whole result (an acquisition outside the method's conditions), first in every legend
WARNING_COLOUR = (255, 200, 0)
#: algorithm parameters (:class:`imaging.results.AlgorithmId`) whose values are drawn as such warnings
WARNING_PARAMETER_PREFIX = "acquisition_warning"
Colour = tuple[int, int, int]


@functools.lru_cache(maxsize=8)
def display_font(size: int = FONT_PX) -> ImageFont.FreeTypeFont:
    """The font every summary image is drawn with (DejaVu Sans at *size* px)."""
    return ImageFont.truetype(str(font_path()), size)


@dataclass(frozen=True)
class DrawnText:
    """One line of text as drawn: top-left (*x*, *y*) in the capture, font *size* in px (DejaVu Sans)."""

    x: float
    y: float
    text: str
    size: int = FONT_PX


@dataclass(frozen=True)
class LegendLine:
    """A legend line: text, colour, and its indent in px from the legend's left padding."""

    text: str
    colour: Colour
    indent_px: int = 0


def wrap_lines(text: str, size: int, width: float, colour: Colour, indent_px: int = 0) -> list[LegendLine]:
    """*text* wrapped to *width* px (from the legend's left padding) with the summary font at *size*;
    continuation lines are indented by :data:`WRAP_INDENT_PX` more."""
    font = display_font(size)
    first = wrap(text, font.getlength, width - indent_px)
    out = [LegendLine(first[0], colour, indent_px)]
    if len(first) > 1:
        rest = wrap(" ".join(first[1:]), font.getlength, width - indent_px - WRAP_INDENT_PX)
        out += [LegendLine(t, colour, indent_px + WRAP_INDENT_PX) for t in rest]
    return out


@dataclass(frozen=True)
class KeyImageLayout:
    """Where the source slice lies in the capture: SC pixel = origin + (index + 0.5) × scale."""

    scale: float
    image_x0: int
    image_y0: int
    image_width: int
    image_height: int
    legend_x0: int
    width: int
    height: int

    def to_capture(self, row: float, col: float) -> tuple[float, float]:
        """Continuous capture coordinates (x, y) of the centre of source pixel (*row*, *col*)."""
        return self.image_x0 + (col + 0.5) * self.scale, self.image_y0 + (row + 0.5) * self.scale


def key_image_layout(rows: int, cols: int, legend_lines: int, banner_px: int = BANNER_PX) -> KeyImageLayout:
    """Layout of a key image of a *rows* × *cols* slice: small images are enlarged by an integer
    factor to at least 512 px, large ones reduced to at most 1024 px; the legend sits to the right,
    below a banner of *banner_px* rows; the capture is as tall as the image or the legend."""
    largest = max(rows, cols)
    if largest <= MIN_IMAGE_PX:
        scale = float(max(1, MIN_IMAGE_PX // largest))
    else:
        scale = min(1.0, MAX_IMAGE_PX / largest)
    width_img, height_img = int(round(cols * scale)), int(round(rows * scale))
    legend_height = 2 * PAD_PX + LINE_PX * legend_lines
    height = banner_px + max(height_img, legend_height)
    return KeyImageLayout(scale, 0, banner_px, width_img, height_img, width_img, width_img + LEGEND_PX, height)


@dataclass(frozen=True, eq=False)
class KeyImage:
    """A rendered key image: RGB uint8 *pixels*, the source slice it shows, and its layout.

    *tracking_ids*: the findings drawn on it; *listed_ids*: the findings its legend lists in full
    (those drawn, then the exam-level ones); *numbers*: tracking id -> the number marked and listed;
    *texts*: every line of text drawn, and *markers*: (tracking id, x, y, ring radius) of every ring
    drawn, both in capture pixels, for checks of the layout."""

    slice_index: int
    pixels: np.ndarray
    layout: KeyImageLayout
    tracking_ids: tuple[str, ...]
    listed_ids: tuple[str, ...] = ()
    numbers: tuple[tuple[str, int], ...] = ()
    texts: tuple[DrawnText, ...] = ()
    markers: tuple[tuple[str, float, float, float], ...] = ()


@dataclass(frozen=True, eq=False)
class _Place:
    finding: Finding
    number: int
    slice_index: int
    center_rc: tuple[float, float]
    radius_px: float
    outline: np.ndarray | None


def finding_locations(source: Volume | Mammogram, findings: Sequence[Finding],
                      segments: Sequence[Segment] = ()) -> dict[str, str]:
    """Tracking id -> the image a reader finds each located finding on (``image 42``), as on the key images.

    Raises:
        WriteError: a finding refers to a segment that is not given.
    """
    out = {}
    for number, finding in enumerate(findings, start=1):
        place = _place(source, finding, number, segments)
        if place is not None:
            out[finding.tracking_id] = image_label(source, place.slice_index)
    return out


def _slice_mask(source: Volume | Mammogram, segment: Segment) -> np.ndarray:
    mask = np.asarray(segment.mask, dtype=bool)
    return mask[np.newaxis] if isinstance(source, Mammogram) else mask


def _place(source: Volume | Mammogram, finding: Finding, number: int, segments: Sequence[Segment]) -> _Place | None:
    """Where a finding is drawn, or None for an exam-level finding (or an empty segment)."""
    if finding.region is not None:
        pts = np.asarray(finding.region.points_rc, dtype=float)
        center = finding.region.center_rc()
        radius = float(np.max(np.linalg.norm(pts - np.asarray(center), axis=1))) if len(pts) > 1 else 0.0
        return _Place(finding, number, finding.region.slice_index, center, radius, None)
    if finding.segment_number is None:
        return None
    if not 1 <= finding.segment_number <= len(segments):
        raise WriteError(f"summary: finding {finding.tracking_id} refers to segment {finding.segment_number}, "
                         f"{len(segments)} segments given")
    mask = _slice_mask(source, segments[finding.segment_number - 1])
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    if not areas.any():
        return None
    k = int(np.argmax(areas))
    rows, cols = np.nonzero(mask[k])
    radius = float(np.sqrt(areas[k] / np.pi))
    return _Place(finding, number, k, (float(rows.mean()), float(cols.mean())), radius, mask[k])


def image_label(source: Volume | Mammogram, k: int) -> str:
    """How a viewer user finds slice *k*: ``image <Instance Number>`` or ``frame <n>`` of a multi-frame."""
    frame = source.source if isinstance(source, Mammogram) else (source.sources[k] if source.sources else None)
    if frame is None:
        return f"slice {k + 1}"
    if frame.frame_number:
        return f"frame {frame.frame_number}"
    number = frame.header.get("InstanceNumber")
    return f"image {number}" if number not in (None, "") else f"slice {k + 1}"


def _where(source: Volume | Mammogram, place: _Place | None) -> str:
    return image_label(source, place.slice_index) if place is not None else ""


def _block(number: int, finding: Finding, place: _Place | None, detailed: bool) -> list[LegendLine]:
    """A finding's legend lines: its heading in its colour (white when not drawn), then its details.
    No image number: the legend's title names the image it is on."""
    width = LEGEND_PX - 2 * PAD_PX
    colour = PALETTE[(number - 1) % len(PALETTE)] if place is not None else WHITE
    lines = wrap_lines(finding_heading(number, finding), FONT_PX, width, colour)
    for text in finding_details(finding) if detailed else []:
        lines += wrap_lines(text, FONT_PX, width, DETAIL_COLOUR, DETAIL_INDENT_PX)
    return lines


def _refs(source: Volume | Mammogram, items: Sequence[tuple[int, Finding]], places: dict[str, _Place]) -> str:
    return ", ".join(f"{n} ({_where(source, places.get(f.tracking_id))})" for n, f in items)


def legend_notes(context: ResultContext) -> tuple[str, ...]:
    """The warnings that qualify the whole result, as legend sentences: the values of the algorithm
    parameters named ``acquisition_warning...`` (e.g. "Acquired at 100 kVp, not 120 kVp: ..."), in order."""
    algorithm = context.algorithm_id
    return tuple(value[:1].upper() + value[1:] for name, value in algorithm.parameters
                 if name.startswith(WARNING_PARAMETER_PREFIX) and value)


def _legend(source: Volume | Mammogram, findings: Sequence[Finding], places: dict[str, _Place], k: int,
            shown: Sequence[int], notes: Sequence[str] = ()) -> tuple[list[LegendLine], tuple[str, ...]]:
    """The legend of the key image of slice *k*: the *notes* (warnings on the whole result), the findings
    drawn on it, the exam-level findings, then one line each naming the findings on the other key images
    (*shown* slices) and those on no key image. Past :data:`MAX_LEGEND_LINES` the last findings keep their
    heading only; the notes are always drawn in full.

    Returns the lines and the tracking ids listed in full."""
    numbered = list(enumerate(findings, start=1))
    listed = [(n, f) for n, f in numbered if f.tracking_id in places and places[f.tracking_id].slice_index == k]
    listed += [(n, f) for n, f in numbered if f.tracking_id not in places]
    elsewhere = [(n, f) for n, f in numbered if f.tracking_id in places
                 and places[f.tracking_id].slice_index != k and places[f.tracking_id].slice_index in shown]
    unshown = [(n, f) for n, f in numbered if f.tracking_id in places
               and places[f.tracking_id].slice_index not in shown]
    width = LEGEND_PX - 2 * PAD_PX
    head = [line for note in notes for line in wrap_lines(note, FONT_PX, width, WARNING_COLOUR)]
    tail: list[LegendLine] = []
    if elsewhere:
        tail += wrap_lines(f"On the other key images: {_refs(source, elsewhere, places)}", FONT_PX, width,
                           NOTE_COLOUR)
    if unshown:
        tail += wrap_lines(f"Not on a key image: {_refs(source, unshown, places)}; see the structured report",
                           FONT_PX, width, NOTE_COLOUR)
    blocks = [_block(n, f, places.get(f.tracking_id), True) for n, f in listed]
    brief = len(blocks)
    while brief > 0 and sum(map(len, blocks)) + len(head) + len(tail) > MAX_LEGEND_LINES:
        brief -= 1
        blocks[brief] = _block(*listed[brief], places.get(listed[brief][1].tracking_id), False)
    if brief < len(blocks):
        numbers = ", ".join(str(n) for n, _ in listed[brief:])
        tail = wrap_lines(f"Measurements of {numbers}: see the structured report (SR)", FONT_PX, width,
                          MARKER_COLOUR) + tail
    if not listed:
        blocks = [[LegendLine("No finding on this image", WHITE)]]
    return head + [line for block in blocks for line in block] + tail, tuple(f.tracking_id for _, f in listed)


def _first_value(value: object) -> float:
    """The first of a possibly multi-valued DS (Window Center/Width may list several windows)."""
    if isinstance(value, (list, tuple, MultiValue)):
        return float(value[0])  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def _grey(source: Volume | Mammogram, k: int, window: tuple[float, float] | None) -> np.ndarray:
    """The slice as uint8 grey: *window* (centre, width), else the source's first VOI window (volumes),
    else the 1st-99th percentile range."""
    image = source.pixels if isinstance(source, Mammogram) else source.voxels[k]
    frame = source.sources[k] if isinstance(source, Volume) and source.sources else None
    if window is None and frame is not None and "WindowCenter" in frame.header and "WindowWidth" in frame.header:
        window = (_first_value(frame.header.WindowCenter), _first_value(frame.header.WindowWidth))
    if window is None:
        lo, hi = (float(v) for v in np.percentile(image, [1.0, 99.0]))
        window = ((lo + hi) / 2, max(hi - lo, 1e-6))
    center, width = window
    scaled = np.clip((image - (center - width / 2)) / max(width, 1e-6), 0.0, 1.0)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _draw_outline(canvas: np.ndarray, layout: KeyImageLayout, place: _Place) -> None:
    """Segment outline (2 px at display resolution) written into the RGB *canvas*."""
    if place.outline is None:
        return
    big = np.asarray(Image.fromarray(place.outline.astype(np.uint8) * 255).resize(
        (layout.image_width, layout.image_height), Image.NEAREST)) > 0
    edge = big & ~ndimage.binary_erosion(big, iterations=2)
    region = canvas[layout.image_y0:layout.image_y0 + layout.image_height,
                    layout.image_x0:layout.image_x0 + layout.image_width]
    region[edge] = PALETTE[(place.number - 1) % len(PALETTE)]


def _draw_marker(draw: ImageDraw.ImageDraw, layout: KeyImageLayout,
                 place: _Place) -> tuple[DrawnText, tuple[str, float, float, float]]:
    """Region shape in the finding's colour, a yellow ring centred on the finding, and its number
    (kept inside the image area); returns the number as drawn and the ring (id, x, y, radius)."""
    colour = PALETTE[(place.number - 1) % len(PALETTE)]
    region = place.finding.region
    if region is not None and region.graphic in (Graphic.CIRCLE, Graphic.POLYLINE, Graphic.ELLIPSE):
        pts = [layout.to_capture(r, c) for r, c in region.points_rc]
        if region.graphic == Graphic.CIRCLE:
            (cx, cy), (px, py) = pts
            rad = float(np.hypot(px - cx, py - cy))
            draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], outline=colour, width=2)
        elif region.graphic == Graphic.ELLIPSE:
            (ax, ay), (bx, by), (cx2, cy2), (dx, dy) = pts
            draw.line([(ax, ay), (bx, by)], fill=colour, width=2)
            draw.line([(cx2, cy2), (dx, dy)], fill=colour, width=2)
        else:
            draw.line(pts + [pts[0]], fill=colour, width=2)
    cx, cy = layout.to_capture(*place.center_rc)
    ring = max(12.0, place.radius_px * layout.scale + 8.0)
    draw.ellipse([cx - ring, cy - ring, cx + ring, cy + ring], outline=MARKER_COLOUR, width=2)
    font = display_font(FONT_PX)
    text = str(place.number)
    left, top, right, bottom = font.getbbox(text, stroke_width=2)
    x = min(cx + ring * 0.75 + 2, layout.image_x0 + layout.image_width - right - 1)
    x = x if x >= layout.image_x0 else float(layout.image_x0)
    y = cy - ring - FONT_PX
    if y + top < layout.image_y0:  # no room above the ring: below it
        y = cy + ring + 2
    y = min(y, layout.image_y0 + layout.image_height - bottom - 1)
    draw.text((x, y), text, fill=WHITE, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return DrawnText(x, y, text), (place.finding.tracking_id, cx, cy, ring)


def _banner_lines(title: str, width: int) -> list[str]:
    font = display_font(FONT_PX)
    return wrap(f"{DISCLAIMER_DISPLAY}   |   {title}" if title else DISCLAIMER_DISPLAY, font.getlength,
                width - 2 * PAD_PX)


def _render(source: Volume | Mammogram, k: int, places: list[_Place], legend: list[LegendLine],
            title: str, window: tuple[float, float] | None) -> tuple[np.ndarray, KeyImageLayout, list[DrawnText],
                                                                 list[tuple[str, float, float, float]]]:
    grey = _grey(source, k, window)
    probe = key_image_layout(grey.shape[0], grey.shape[1], len(legend) + 2)
    banner = _banner_lines(title, probe.width)
    banner_px = max(BANNER_PX, 2 * 12 + LINE_PX * len(banner) - (LINE_PX - FONT_PX))
    layout = key_image_layout(grey.shape[0], grey.shape[1], len(legend) + 2, banner_px)
    canvas = np.zeros((layout.height, layout.width, 3), dtype=np.uint8)
    resample = Image.NEAREST if layout.scale >= 1 else Image.LANCZOS
    shown = np.asarray(Image.fromarray(grey).resize((layout.image_width, layout.image_height), resample))
    canvas[layout.image_y0:layout.image_y0 + layout.image_height,
           layout.image_x0:layout.image_x0 + layout.image_width] = shown[..., np.newaxis]
    for place in places:
        _draw_outline(canvas, layout, place)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    font = display_font(FONT_PX)
    drawn = [_draw_marker(draw, layout, place) for place in places]
    texts, markers = [t for t, _ in drawn], [m for _, m in drawn]
    # markers near an edge are cut at the image area: legend and banner are painted over them
    draw.rectangle((layout.legend_x0, layout.image_y0, layout.width - 1, layout.height - 1), fill=(0, 0, 0))
    draw.rectangle((0, 0, layout.width - 1, layout.image_y0 - 1), fill=(150, 0, 0))
    for i, line in enumerate(banner):
        texts.append(DrawnText(PAD_PX, 12 + i * LINE_PX, line))
        draw.text((texts[-1].x, texts[-1].y), line, fill=WHITE, font=font)
    x0, y = layout.legend_x0 + PAD_PX, layout.image_y0 + PAD_PX
    texts.append(DrawnText(x0, y, f"Findings on this key image ({image_label(source, k)})"))
    draw.text((x0, y), texts[-1].text, fill=MARKER_COLOUR, font=font)
    for line in legend:
        y += LINE_PX
        texts.append(DrawnText(x0 + line.indent_px, y, line.text))
        draw.text((texts[-1].x, y), line.text, fill=line.colour, font=font)
    return np.asarray(img, dtype=np.uint8), layout, texts, markers


def render_key_images(source: Volume | Mammogram, findings: Sequence[Finding], *, segments: Sequence[Segment] = (),
                      title: str = "", window: tuple[float, float] | None = None,
                      max_images: int = 4, notes: Sequence[str] = ()) -> list[KeyImage]:
    """Key images of *findings*: one per slice holding a finding (at most *max_images*, the slices with
    the most findings first, then in slice order); one image of the middle slice when no finding has a place.
    *notes*: warnings on the whole result (:func:`legend_notes`), first in every legend.

    *window*: (centre, width) in the voxel unit; default the source's Window Center/Width, else the 1-99th
    percentiles of the slice.

    Raises:
        WriteError: a finding refers to a segment that is not given.
    """
    places = {}
    for number, finding in enumerate(findings, start=1):
        place = _place(source, finding, number, segments)
        if place is not None:
            places[finding.tracking_id] = place
    by_slice: dict[int, list[_Place]] = {}
    for place in places.values():
        by_slice.setdefault(place.slice_index, []).append(place)
    chosen = sorted(by_slice, key=lambda k: (-len(by_slice[k]), k))[:max(1, max_images)]
    if not chosen:
        chosen = [0 if isinstance(source, Mammogram) else source.shape[0] // 2]
    numbers = tuple((f.tracking_id, n) for n, f in enumerate(findings, start=1))
    out = []
    for k in sorted(chosen):
        legend, listed = _legend(source, findings, places, k, chosen, notes)
        drawn = by_slice.get(k, [])
        pixels, layout, texts, markers = _render(source, k, drawn, legend, title, window)
        out.append(KeyImage(k, pixels, layout, tuple(p.finding.tracking_id for p in drawn), listed, numbers,
                            tuple(texts), tuple(markers)))
    return out


def _patient_orientation(source: Volume | Mammogram, k: int) -> tuple[str, str] | None:
    """Patient Orientation of the rendered slice's rows and columns, e.g. ("L", "P") for an axial image."""
    if isinstance(source, Mammogram):
        po = source.patient_orientation
        return (po[0], po[1]) if len(po) == 2 else None
    letters = []
    for axis in (source.affine[:3, 2], source.affine[:3, 1]):  # along a row (columns), along a column (rows)
        unit = axis / np.linalg.norm(axis)
        i = int(np.argmax(np.abs(unit)))
        letters.append((("R", "L"), ("A", "P"), ("F", "H"))[i][int(unit[i] > 0)])
    return letters[0], letters[1]


def _source_reference(source: Volume | Mammogram, k: int) -> tuple[ImageRef, ...]:
    frame = source.source if isinstance(source, Mammogram) else (source.sources[k] if source.sources else None)
    if frame is None:
        return ()
    return (ImageRef(frame.sop_class_uid, frame.sop_instance_uid, frame.frame_number or None),)


def write_summary_capture(source: Volume | Mammogram, findings: Sequence[Finding], context: ResultContext, *,
                          segments: Sequence[Segment] = (), window: tuple[float, float] | None = None,
                          max_images: int = 4) -> list[Dataset]:
    """Secondary Capture key images (RGB, one instance per key image) in a new series of the source study.

    Raises:
        WriteError: the source has no DICOM header, or a finding refers to a missing segment.
    """
    title = f"AIWS {context.pipeline} {context.model_version}"
    images = render_key_images(source, findings, segments=segments, title=title, window=window,
                               max_images=max_images, notes=legend_notes(context))
    out = []
    for index, key in enumerate(images):
        frame = source.source if isinstance(source, Mammogram) else (
            source.sources[key.slice_index] if source.sources else None)
        if frame is None:
            raise WriteError(f"summary for series {source.series_uid}: slice {key.slice_index} has no source header")
        page = RenderedPage(key.pixels, frame.header, _source_reference(source, key.slice_index),
                            _patient_orientation(source, key.slice_index),
                            source.laterality if isinstance(source, Mammogram) else None,
                            f"Key image {index + 1} of {len(images)} with findings of {title}")
        out.append(write_page_capture(page, context, index))
    LOGGER.info("study %s: %s %s wrote %d summary images", source.study_uid, context.pipeline,
                context.model_version, len(out))
    return out
