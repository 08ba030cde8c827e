"""Secondary Capture summary: key images with the findings drawn, and a legend, readable at 1:1.

Each key image is one slice of the source (windowed greyscale), scaled by
:func:`key_image_layout`, with segment outlines and region shapes in a
per-finding colour, a yellow ring marker centred on each finding, a red
banner stating "AI result - not for primary diagnosis unless validated"
(ASCII hyphen: the bundled font has no em dash),
and a legend listing every finding with its measurements and evaluations.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian
from scipy import ndimage

from imaging.errors import WriteError
from imaging.mammo import Mammogram
from imaging.provenance import contributing_equipment, finish
from imaging.results import DISCLAIMER, Finding, Graphic, ResultContext, Segment
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

MARKER_COLOUR = (255, 255, 0)
PALETTE = ((255, 80, 80), (80, 230, 80), (80, 170, 255), (255, 90, 255), (255, 165, 0), (0, 230, 230))
BANNER_PX, LEGEND_PX, LINE_PX, PAD_PX, FONT_PX = 48, 600, 26, 16, 19
MAX_IMAGE_PX, MIN_IMAGE_PX = 1024, 512
MAX_LEGEND_LINES = 48


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


def key_image_layout(rows: int, cols: int, legend_lines: int) -> KeyImageLayout:
    """Layout of a key image of a *rows* × *cols* slice: small images are enlarged by an integer
    factor to at least 512 px, large ones reduced to at most 1024 px; the legend sits to the right."""
    largest = max(rows, cols)
    if largest <= MIN_IMAGE_PX:
        scale = float(max(1, MIN_IMAGE_PX // largest))
    else:
        scale = min(1.0, MAX_IMAGE_PX / largest)
    width_img, height_img = int(round(cols * scale)), int(round(rows * scale))
    legend_height = 2 * PAD_PX + LINE_PX * legend_lines
    height = BANNER_PX + max(height_img, legend_height)
    return KeyImageLayout(scale, 0, BANNER_PX, width_img, height_img, width_img, width_img + LEGEND_PX, height)


@dataclass(frozen=True, eq=False)
class KeyImage:
    """A rendered key image: RGB uint8 *pixels*, the source slice it shows, and its layout."""

    slice_index: int
    pixels: np.ndarray
    layout: KeyImageLayout
    tracking_ids: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class _Place:
    finding: Finding
    number: int
    slice_index: int
    center_rc: tuple[float, float]
    radius_px: float
    outline: np.ndarray | None


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


def _legend(source: Volume | Mammogram, findings: Sequence[Finding],
            places: dict[str, _Place]) -> list[tuple[str, tuple[int, int, int]]]:
    lines: list[tuple[str, tuple[int, int, int]]] = []
    for number, f in enumerate(findings, start=1):
        where = places.get(f.tracking_id)
        site = f" - {f.finding_site.meaning}" if f.finding_site else ""
        at = f" ({image_label(source, where.slice_index)})" if where else ""
        colour = PALETTE[(number - 1) % len(PALETTE)] if where else (255, 255, 255)
        lines.append((f"{number}. {f.display_label}{site}{at}", colour))
        lines += [(f"     {m.concept.meaning}: {m.value:.4g} {m.unit.value}", (230, 230, 230)) for m in f.measurements]
        lines += [(f"     {e.concept.meaning}: {e.value.meaning}", (230, 230, 230)) for e in f.evaluations]
    if len(lines) > MAX_LEGEND_LINES:
        hidden = len(lines) - (MAX_LEGEND_LINES - 1)
        lines = lines[:MAX_LEGEND_LINES - 1] + [(f"... {hidden} more lines: see the structured report", MARKER_COLOUR)]
    return lines


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


def _draw_marker(draw: ImageDraw.ImageDraw, layout: KeyImageLayout, place: _Place, font: ImageFont.FreeTypeFont) -> None:
    """Region shape in the finding's colour, a yellow ring centred on the finding, and its number."""
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
    draw.text((cx + ring * 0.75 + 2, cy - ring - FONT_PX), str(place.number), fill=(255, 255, 255), font=font,
              stroke_width=2, stroke_fill=(0, 0, 0))


def _render(source: Volume | Mammogram, k: int, places: list[_Place], legend: list[tuple[str, tuple[int, int, int]]],
            title: str, window: tuple[float, float] | None) -> KeyImage:
    grey = _grey(source, k, window)
    layout = key_image_layout(grey.shape[0], grey.shape[1], len(legend) + 2)
    canvas = np.zeros((layout.height, layout.width, 3), dtype=np.uint8)
    resample = Image.NEAREST if layout.scale >= 1 else Image.LANCZOS
    shown = np.asarray(Image.fromarray(grey).resize((layout.image_width, layout.image_height), resample))
    canvas[layout.image_y0:layout.image_y0 + layout.image_height,
           layout.image_x0:layout.image_x0 + layout.image_width] = shown[..., np.newaxis]
    canvas[:BANNER_PX] = (150, 0, 0)
    for place in places:
        _draw_outline(canvas, layout, place)
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=FONT_PX)
    for place in places:
        _draw_marker(draw, layout, place, font)
    draw.text((PAD_PX, 12), f"{DISCLAIMER}   |   {title}", fill=(255, 255, 255), font=font)
    y = BANNER_PX + PAD_PX
    draw.text((layout.legend_x0 + PAD_PX, y), f"Findings (this key image: {image_label(source, k)})",
              fill=MARKER_COLOUR, font=font)
    for text, colour in legend:
        y += LINE_PX
        draw.text((layout.legend_x0 + PAD_PX, y), text, fill=colour, font=font)
    return KeyImage(k, np.asarray(img, dtype=np.uint8), layout, tuple(p.finding.tracking_id for p in places))


def render_key_images(source: Volume | Mammogram, findings: Sequence[Finding], *, segments: Sequence[Segment] = (),
                      title: str = "", window: tuple[float, float] | None = None,
                      max_images: int = 4) -> list[KeyImage]:
    """Key images of *findings*: one per slice holding a finding (at most *max_images*, the slices with
    the most findings first, then in slice order); one image of the middle slice when no finding has a place.

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
    legend = _legend(source, findings, places)
    by_slice: dict[int, list[_Place]] = {}
    for place in places.values():
        by_slice.setdefault(place.slice_index, []).append(place)
    chosen = sorted(by_slice, key=lambda k: (-len(by_slice[k]), k))[:max(1, max_images)]
    if not chosen:
        chosen = [0 if isinstance(source, Mammogram) else source.shape[0] // 2]
    return [_render(source, k, by_slice.get(k, []), legend, title, window) for k in sorted(chosen)]


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


def _source_reference(source: Volume | Mammogram, k: int) -> Dataset | None:
    frame = source.source if isinstance(source, Mammogram) else (source.sources[k] if source.sources else None)
    if frame is None:
        return None
    item = Dataset()
    item.ReferencedSOPClassUID = frame.sop_class_uid
    item.ReferencedSOPInstanceUID = frame.sop_instance_uid
    if frame.frame_number:
        item.ReferencedFrameNumber = frame.frame_number
    return item


def write_summary_capture(source: Volume | Mammogram, findings: Sequence[Finding], context: ResultContext, *,
                          segments: Sequence[Segment] = (), window: tuple[float, float] | None = None,
                          max_images: int = 4) -> list[Dataset]:
    """Secondary Capture key images (RGB, one instance per key image) in a new series of the source study.

    Raises:
        WriteError: the source has no DICOM header, or a finding refers to a missing segment.
    """
    title = f"AIWS {context.pipeline} {context.model_version}"
    images = render_key_images(source, findings, segments=segments, title=title, window=window,
                               max_images=max_images)
    out = []
    for index, key in enumerate(images):
        frame = source.source if isinstance(source, Mammogram) else (
            source.sources[key.slice_index] if source.sources else None)
        if frame is None:
            raise WriteError(f"summary for series {source.series_uid}: slice {key.slice_index} has no source header")
        study_uid = str(frame.header.StudyInstanceUID)
        series_uid, sop_uid = context.uids(study_uid, "sc", index)
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=frame.header, pixel_array=key.pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=context.series_number("sc"),
            sop_instance_uid=sop_uid, instance_number=index + 1, manufacturer=context.manufacturer,
            patient_orientation=_patient_orientation(source, key.slice_index) or ("L", "P"),
            laterality=source.laterality if isinstance(source, Mammogram) else None,
            transfer_syntax_uid=ExplicitVRLittleEndian, contributing_equipment=[contributing_equipment(context)])
        if _patient_orientation(source, key.slice_index) is None:
            sc.PatientOrientation = ""
        reference = _source_reference(source, key.slice_index)
        if reference is not None:
            sc.SourceImageSequence = [reference]
        if "Laterality" not in sc:
            sc.Laterality = ""  # General Series Type 2C: unknown for a summary of a non-paired region
        sc.BurnedInAnnotation = "YES"
        sc.ImageComments = DISCLAIMER
        sc.DerivationDescription = f"Key image {index + 1} of {len(images)} with findings of {title}"[:1024]
        out.append(finish(sc, context, "sc"))
    LOGGER.info("study %s: %s %s wrote %d summary images", source.study_uid, context.pipeline,
                context.model_version, len(out))
    return out
