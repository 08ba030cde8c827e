"""Grayscale Softcopy Presentation States: marks drawn over an original image in any viewer.

One GSPS per source image (e.g. per analysed mammogram). Each mark is a closed rectangle (POLYLINE,
PIXEL units, DICOM image coordinates: (0, 0) is the top-left corner of the top-left pixel, (column,
row) order) with a text label, on one graphic layer. The image's own VOI window is carried over, so
the presentation state shows the image as the modality meant it. The marks come as :class:`imaging.results.Mark` values.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from imaging.errors import WriteError
from imaging.provenance import contributing_equipment, finish
from imaging.results import DISCLAIMER, Mark, ResultContext

LOGGER = logging.getLogger(__name__)

KIND = "gsps"


def rectangle(box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """Closed rectangle (5 points, (column, row)) of *box*, clipped to an image of *shape*."""
    r0, c0, r1, c1 = box
    r0, r1 = float(np.clip(r0, 0, shape[0])), float(np.clip(r1, 0, shape[0]))
    c0, c1 = float(np.clip(c0, 0, shape[1])), float(np.clip(c1, 0, shape[1]))
    return np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=np.float64)


def _text_anchor(box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[float, float]:
    r0, c0, r1, _ = box
    row = r0 - 0.02 * shape[0] if r0 > 0.05 * shape[0] else r1 + 0.02 * shape[0]
    return float(np.clip(c0, 1, shape[1] - 1)), float(np.clip(row, 1, shape[0] - 1))


def _voi(source: Dataset) -> list[hd.pr.SoftcopyVOILUTTransformation] | None:
    if "WindowCenter" not in source or "WindowWidth" not in source:
        return None
    centre, width = source.WindowCenter, source.WindowWidth
    centre = float(centre[0]) if isinstance(centre, MultiValue) else float(centre)
    width = float(width[0]) if isinstance(width, MultiValue) else float(width)
    return [hd.pr.SoftcopyVOILUTTransformation(window_center=centre, window_width=width)]


def layer_name(pipeline: str) -> str:
    """The graphic layer and content label of a pipeline's marks: ``AIWS_<PIPELINE>`` (CS, 16 characters)."""
    text = "".join(ch if ch.isalnum() else "_" for ch in f"AIWS_{pipeline}".upper())
    return text[:16]


def write_gsps(source: Dataset, marks: Sequence[Mark], context: ResultContext, instance: int, *,
               layer: str = "", empty_text: str = "") -> Dataset:
    """The GSPS of one source image (header without pixels is enough) with its *marks*; empty marks say so.

    *instance*: 1-based number of this GSPS among the study's (UIDs derive from it). *layer*: the
    graphic layer name (default :func:`layer_name` of the pipeline). *empty_text*: the text shown when
    there are no marks (default ``AIWS <pipeline>: no marks``).

    Raises:
        WriteError: highdicom refuses the content (message names the source SOP Instance UID).
    """
    layer_label = layer or layer_name(context.pipeline)
    shape = (int(source.Rows), int(source.Columns))
    layer_item = hd.pr.GraphicLayer(layer_name=layer_label, order=1, description=f"AIWS {context.pipeline} marks",
                               display_color=hd.color.CIELabColor(60.0, 60.0, 60.0))
    graphics = [hd.pr.GraphicObject(graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                                    graphic_data=rectangle(m.box, shape), units=hd.pr.AnnotationUnitsValues.PIXEL,
                                    tracking_id=m.tracking_id, tracking_uid=m.tracking_uid) for m in marks]
    texts = [hd.pr.TextObject(text_value=m.label[:64], units=hd.pr.AnnotationUnitsValues.PIXEL,
                              anchor_point=_text_anchor(m.box, shape), anchor_point_visible=False) for m in marks]
    if not marks:
        texts = [hd.pr.TextObject(text_value=(empty_text or f"AIWS {context.pipeline}: no marks")[:64],
                                  units=hd.pr.AnnotationUnitsValues.PIXEL,
                                  anchor_point=(shape[1] / 2.0, 0.03 * shape[0]), anchor_point_visible=False)]
    annotation = hd.pr.GraphicAnnotation(referenced_images=[source], graphic_layer=layer_item,
                                         graphic_objects=graphics or None, text_objects=texts)
    series_uid, sop_uid = context.uids(str(source.StudyInstanceUID), KIND, instance)
    try:
        gsps = hd.pr.GrayscaleSoftcopyPresentationState(
            referenced_images=[source], series_instance_uid=series_uid, series_number=context.series_number(KIND),
            sop_instance_uid=sop_uid, instance_number=instance, manufacturer=context.manufacturer,
            manufacturer_model_name=context.pipeline[:64], software_versions=context.model_version[:64],
            device_serial_number=context.device_serial_number, content_label=layer_label,
            content_description=f"{context.pipeline} marks: {DISCLAIMER}"[:64],
            graphic_annotations=[annotation], graphic_layers=[layer_item],
            institution_name=context.institution_name or None, voi_lut_transformations=_voi(source),
            contributing_equipment=[contributing_equipment(context)])
    except (ValueError, TypeError, AttributeError) as exc:
        raise WriteError(f"GSPS for image {source.SOPInstanceUID}: {exc}") from exc
    finish(gsps, context, KIND)
    gsps.Laterality = str(source.get("ImageLaterality", source.get("Laterality", "")))  # General Series 2C
    return gsps
