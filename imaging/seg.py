"""Binary DICOM Segmentation (SEG): one segment per structure, on the source images' grid.

The SEG references the source instances frame by frame and shares their
Frame of Reference, so viewers overlay it on the source series. Works for a
:class:`~imaging.volume.Volume` read from single-frame files (CT/MR stacks,
one cine phase via ``Cine.phase_volume``) or from one enhanced multi-frame
instance, and for a 2D :class:`~imaging.mammo.Mammogram`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from imaging.errors import WriteError
from imaging.headers import SourceFrame
from imaging.mammo import Mammogram
from imaging.provenance import contributing_equipment, finish
from imaging.results import ResultContext, Segment
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)


def _checked(source: Volume | Mammogram, segments: Sequence[Segment], what: str) -> list[np.ndarray]:
    """The masks as bool arrays of *source*'s shape.

    Raises:
        WriteError: a mask of another shape, naming the segment.
    """
    masks = []
    for number, segment in enumerate(segments, start=1):
        mask = np.asarray(segment.mask, dtype=bool)
        if mask.shape != source.shape:
            raise WriteError(f"{what}: segment {number} ({segment.label}) mask shape {mask.shape} "
                             f"is not the source shape {source.shape}")
        masks.append(mask)
    return masks


def _masks(source: Volume | Mammogram, segments: Sequence[Segment], what: str) -> np.ndarray:
    """Segment masks as one array of frames: a label map (k, r, c) of segment numbers when no two
    segments overlap (one byte per voxel for up to 255 segments), else (k, r, c, segments) bool.
    2D images get k = 1. Each mask is scanned once; the work is done on the slices it touches."""
    masks = _checked(source, segments, what)
    labels = np.zeros(source.shape, dtype=np.uint8 if len(segments) < 256 else np.uint16)
    overlap = False
    for number, mask in enumerate(masks, start=1):
        touched = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
        if touched.size == 0:
            continue
        lo, hi = int(touched[0]), int(touched[-1]) + 1
        region, sub = labels[lo:hi], mask[lo:hi]
        if region[sub].any():
            overlap = True
            break
        region[sub] = number
    array = np.stack(masks, axis=-1) if overlap or len(segments) >= 65536 else labels
    return array[np.newaxis] if isinstance(source, Mammogram) else array


def _frames(source: Volume | Mammogram, masks: np.ndarray,
            what: str) -> tuple[list[Dataset], np.ndarray, list[Dataset]]:
    """(source images, pixel array, further source images): one mask frame per source image, as
    highdicom expects. Slices of a single-frame series without any segment are left out of the frames
    (the SEG omits empty frames anyway) and only referenced; on a large series with small findings
    this saves most of highdicom's per-image work."""
    if isinstance(source, Mammogram):
        return [source.source.header], masks, []
    sources: list[SourceFrame] = []
    for k, frame in enumerate(source.sources):
        if frame is None:
            raise WriteError(f"{what}: slice {k} has no source frame (resampled or interpolated volume); "
                             "bring the mask back to the source grid with imaging.preprocess.resample_like")
        sources.append(frame)
    if not sources:
        raise WriteError(f"{what}: the volume has no DICOM source frames")
    rows, cols = int(sources[0].header.Rows), int(sources[0].header.Columns)
    if masks.shape[1:3] != (rows, cols):
        raise WriteError(f"{what}: mask rows/columns {masks.shape[1:3]} differ from the source images "
                         f"{(rows, cols)} (cropped volume?)")
    if all(f.frame_number is None for f in sources):
        used = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))
        if used.size == 0:
            used = np.arange(len(sources))
        unused = sorted(set(range(len(sources))) - {int(k) for k in used})
        return [sources[k].header for k in used], masks[used], [sources[k].header for k in unused]
    instances = {f.sop_instance_uid for f in sources}
    if len(instances) != 1 or any(f.frame_number is None for f in sources):
        raise WriteError(f"{what}: slices come from {len(instances)} multi-frame instances; expected one")
    header = sources[0].header
    full = np.zeros((int(header.NumberOfFrames),) + masks.shape[1:], dtype=masks.dtype)
    for k, frame in enumerate(sources):
        full[int(frame.frame_number or 1) - 1] = masks[k]
    return [header], full, []


def _reference_further(seg: Dataset, further: Sequence[Dataset]) -> None:
    """Add the source slices without any segment to the Referenced Series Sequence (the whole series
    was the input). Done here rather than by highdicom's ``further_source_images``, which checks each
    image against its IOD (about 5 ms per image)."""
    if not further:
        return
    by_series = {str(item.SeriesInstanceUID): item for item in seg.ReferencedSeriesSequence}
    for header in further:
        series = by_series.get(str(header.SeriesInstanceUID))
        if series is None:
            series = Dataset()
            series.SeriesInstanceUID = header.SeriesInstanceUID
            series.ReferencedInstanceSequence = []
            seg.ReferencedSeriesSequence.append(series)
            by_series[str(header.SeriesInstanceUID)] = series
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        series.ReferencedInstanceSequence.append(item)


def _description(number: int, segment: Segment, context: ResultContext, study_uid: str) -> hd.seg.SegmentDescription:
    algorithm = context.algorithm_id
    tracking_id = segment.tracking_id or f"segment-{number}"
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.label[:64],
        segmented_property_category=segment.category.concept(),
        segmented_property_type=segment.property_type.concept(),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm.name[:64], family=codes.cid7162.ArtificialIntelligence, version=algorithm.version[:64],
            parameters=dict(algorithm.parameters) or None),
        tracking_id=tracking_id,
        tracking_uid=context.tracking_uid(study_uid, tracking_id),
        anatomic_regions=[segment.anatomic_region.concept()] if segment.anatomic_region else None,
    )


def write_seg(source: Volume | Mammogram, segments: Sequence[Segment], context: ResultContext, *,
              index: int = 0, description: str = "") -> Dataset:
    """A binary SEG of *segments* (masks on *source*'s grid) in a new series of the source study.

    Segment numbers are 1-based in the order given; a :class:`~imaging.results.Finding`
    refers to them by ``segment_number``. Empty masks are allowed (the segment
    has no frames). *index* (0-based) numbers the instance within the result's SEG series (e.g. one
    SEG per cardiac phase): its SOP Instance UID and Instance Number derive from it. *description*:
    the Content Description (default ``<pipeline> <version>``).

    Raises:
        WriteError: no segments, a mask of the wrong shape, a volume without
            source frames (resampled), or highdicom rejecting the input (its message kept).
    """
    what = f"SEG for series {source.series_uid}"
    if not segments:
        raise WriteError(f"{what}: no segments")
    images, pixel_array, further = _frames(source, _masks(source, segments, what), what)
    study_uid = str(images[0].StudyInstanceUID)
    series_uid, sop_uid = context.uids(study_uid, "seg", index)
    try:
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=pixel_array if pixel_array.dtype != bool else pixel_array.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_description(n, s, context, study_uid) for n, s in enumerate(segments, start=1)],
            series_instance_uid=series_uid,
            series_number=context.series_number("seg"),
            sop_instance_uid=sop_uid,
            instance_number=index + 1,
            manufacturer=context.manufacturer,
            manufacturer_model_name=context.pipeline[:64],
            software_versions=context.model_version[:64],
            device_serial_number=context.device_serial_number,
            content_label="AIWS",
            content_description=(description or f"{context.pipeline} {context.model_version}")[:64],
            transfer_syntax_uid=ExplicitVRLittleEndian,
            contributing_equipment=[contributing_equipment(context)],
            omit_empty_frames=True,
        )
    except (ValueError, TypeError) as exc:
        raise WriteError(f"{what}: {exc}") from exc
    _reference_further(seg, further)
    if "FrameOfReferenceUID" not in seg:  # 2D source without a frame of reference: General Image 2C
        seg.PatientOrientation = images[0].get("PatientOrientation", "")
    LOGGER.info("study %s: %s %s wrote SEG %s (%d segments)", study_uid, context.pipeline, context.model_version,
                sop_uid, len(segments))
    return finish(seg, context, "seg")
