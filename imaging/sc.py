"""Secondary Capture of a rendered page: the one SC writer (key images, summary pages, text pages).

The page is drawn by a renderer (:mod:`imaging.capture` for key images, :mod:`imaging.layouts` for
the per-pipeline pages) and handed over as a :class:`~imaging.results.RenderedPage`; this module
wraps it in an RGB Secondary Capture in a new series of the source study, with the AI-result
disclaimer, burned-in annotation and the algorithm as contributing equipment.
"""
from __future__ import annotations

import logging

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from imaging.errors import WriteError
from imaging.provenance import contributing_equipment, finish
from imaging.results import DISCLAIMER, ImageRef, RenderedPage, ResultContext

LOGGER = logging.getLogger(__name__)


def _source_item(ref: ImageRef) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = ref.sop_instance_uid
    if ref.frame_number:
        item.ReferencedFrameNumber = ref.frame_number
    return item


def write_page_capture(page: RenderedPage, context: ResultContext, index: int = 0) -> Dataset:
    """The RGB Secondary Capture of *page*; *index* (0-based) numbers it within the result's SC series
    (its SOP Instance UID and Instance Number derive from it).

    Raises:
        WriteError: the header has no Study Instance UID, or highdicom rejects the content (its message kept).
    """
    if "StudyInstanceUID" not in page.header:
        raise WriteError("summary capture: the source header has no Study Instance UID")
    study_uid = str(page.header.StudyInstanceUID)
    series_uid, sop_uid = context.uids(study_uid, "sc", index)
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=page.header, pixel_array=page.pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=context.series_number("sc"),
            sop_instance_uid=sop_uid, instance_number=index + 1, manufacturer=context.manufacturer,
            patient_orientation=page.patient_orientation or ("L", "P"), laterality=page.laterality or None,
            transfer_syntax_uid=ExplicitVRLittleEndian, contributing_equipment=[contributing_equipment(context)])
    except (ValueError, TypeError) as exc:
        raise WriteError(f"summary capture for study {study_uid}: {exc}") from exc
    if page.patient_orientation is None:
        sc.PatientOrientation = ""  # a page without one anatomical orientation (Type 2C: empty)
    if page.sources:
        sc.SourceImageSequence = [_source_item(ref) for ref in page.sources]
    if "Laterality" not in sc:
        sc.Laterality = ""  # General Series Type 2C: unknown for a summary of a non-paired region or both sides
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = DISCLAIMER
    if page.derivation:
        sc.DerivationDescription = page.derivation[:1024]
    LOGGER.debug("study %s: %s %s summary capture %s", study_uid, context.pipeline, context.model_version, sop_uid)
    return finish(sc, context, "sc")
