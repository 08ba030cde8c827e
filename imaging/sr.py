"""Comprehensive 3D SR following TID 1500 (Measurement Report), built with highdicom.

One measurement group per :class:`~imaging.results.Finding`, with tracking
identifier and UID, finding type and site, NUM measurements (UCUM units),
coded qualitative evaluations, and where the finding is: a SEG segment
(TID 1411 volumetric ROI; TID 1410 with the segmentation frame for a 2D
image), a planar image region (TID 1410 SCOORD), a region in the frame of reference (SCOORD3D: TID
1410 for a polygon or ellipse, TID 1411 volume surface for an ellipsoid), or nothing (TID 1501, an
exam-level finding). The source is a Volume, one 2D image, or several 2D images (a tuple of
:class:`~imaging.mammo.Mammogram`, e.g. the four views of a screening study: a region's
``slice_index`` then picks the image). The algorithm (name, version, parameters) is named on
every group and every measurement; the observer is the algorithm as a device.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from imaging.errors import WriteError
from imaging.mammo import Mammogram
from imaging.provenance import contributing_equipment, finish, source_header
from imaging.results import Code, Finding, Graphic, Graphic3D, ImageRegion2D, ImageRegion3D, ResultContext
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

#: What a report is about: a volume, one 2D image, or several 2D images (``slice_index`` picks one).
SrSource = Volume | Mammogram | tuple[Mammogram, ...]

#: Procedure reported when the pipeline gives none (SCT 363679005 "Imaging procedure").
IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging procedure")


def algorithm_identification(context: ResultContext) -> hd.sr.AlgorithmIdentification:
    """The algorithm (name, version, parameters) named on every measurement."""
    algorithm = context.algorithm_id
    return hd.sr.AlgorithmIdentification(name=algorithm.name[:64], version=algorithm.version[:64],
                                         parameters=algorithm.parameter_strings() or None)


def device_observer(context: ResultContext) -> hd.sr.ObservationContext:
    """The observation context: the algorithm as a device observer (its UID changes with the model version)."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=context.device_uid, name=context.algorithm_id.name[:64], manufacturer_name=context.manufacturer[:64],
        model_name=context.pipeline[:64])
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _headers(source: SrSource) -> list[Dataset]:
    if isinstance(source, tuple):
        return [m.source.header for m in source]
    return list(source.headers)


def _series_name(source: SrSource) -> str:
    """The source series for messages (the first image's for several images)."""
    return source[0].series_uid if isinstance(source, tuple) else source.series_uid


def _frame_of(source: SrSource, slice_index: int, what: str) -> tuple[str, str, int | None]:
    """(SOP Class UID, SOP Instance UID, frame number or None) of a slice (or image) of *source*."""
    if isinstance(source, tuple):
        if not 0 <= slice_index < len(source):
            raise WriteError(f"{what}: image {slice_index} does not exist ({len(source)} source images)")
        return source[slice_index].source.sop_class_uid, source[slice_index].source.sop_instance_uid, None
    if isinstance(source, Mammogram):
        if slice_index != 0:
            raise WriteError(f"{what}: a 2D image has only slice 0, got {slice_index}")
        return source.source.sop_class_uid, source.source.sop_instance_uid, None
    frame = source.sources[slice_index] if 0 <= slice_index < len(source.sources) else None
    if frame is None:
        raise WriteError(f"{what}: slice {slice_index} has no source image (volume of {source.shape[0]} slices)")
    return frame.sop_class_uid, frame.sop_instance_uid, frame.frame_number


def _scoord(region: ImageRegion2D) -> np.ndarray:
    """SCOORD graphic data (column, row) with the top-left pixel's centre at (0.5, 0.5); polylines closed."""
    pts = np.asarray(region.points_rc, dtype=float)[:, ::-1] + 0.5
    if region.graphic == Graphic.POLYLINE and not np.allclose(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    return pts


def _region(source: SrSource, region: ImageRegion2D, what: str) -> hd.sr.ImageRegion:
    if region.graphic in (Graphic.POINT, Graphic.MULTIPOINT):
        raise WriteError(f"{what}: TID 1410 image regions are areas; use CIRCLE, ELLIPSE or POLYLINE, "
                         f"not {region.graphic.value}")
    sop_class, sop_uid, frame = _frame_of(source, region.slice_index, what)
    image = hd.sr.SourceImageForRegion(sop_class, sop_uid, [frame] if frame else None)
    return hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues(region.graphic.value),
                             graphic_data=_scoord(region), source_image=image)


def _region3d(source: SrSource, region: ImageRegion3D, what: str) -> tuple[bool, Any]:
    """(volumetric?, highdicom content) of a SCOORD3D region: a planar ImageRegion3D (POLYGON, ELLIPSE) or
    a VolumeSurface (ELLIPSOID) in the Volume's frame of reference, points mapped to LPS mm by its affine."""
    if not isinstance(source, Volume) or not source.frame_of_reference_uid:
        raise WriteError(f"{what}: a 3D region needs a Volume with a Frame of Reference UID")
    krc = np.asarray(region.points_krc, dtype=float)
    lps = (source.affine @ np.column_stack([krc, np.ones(len(krc))]).T).T[:, :3]
    if region.graphic == Graphic3D.POLYGON and not np.allclose(lps[0], lps[-1]):
        lps = np.vstack([lps, lps[:1]])
    if region.graphic == Graphic3D.ELLIPSOID:
        return True, hd.sr.VolumeSurface(graphic_type=hd.sr.GraphicTypeValues3D.ELLIPSOID, graphic_data=lps,
                                         frame_of_reference_uid=source.frame_of_reference_uid,
                                         source_series=hd.sr.SourceSeriesForSegmentation(source.series_uid))
    return False, hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D(region.graphic.value), graphic_data=lps,
                                      frame_of_reference_uid=source.frame_of_reference_uid)


def _seg_frames(seg: Dataset, segment_number: int) -> list[int]:
    """1-based SEG frame numbers holding *segment_number*."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    frames = []
    for n, item in enumerate(seg.get("PerFrameFunctionalGroupsSequence", []), start=1):
        ident = item if "SegmentIdentificationSequence" in item else shared  # one segment: in the shared group
        if int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == segment_number:
            frames.append(n)
    return frames


def _segment_reference(source: SrSource, seg: Dataset | None, number: int, what: str) -> dict[str, Any]:
    """Keyword arguments locating a finding at SEG segment *number* (volumetric or, for 2D, planar)."""
    if isinstance(source, tuple):
        raise WriteError(f"{what}: a segment reference needs one source image or volume, not {len(source)} images")
    if seg is None:
        raise WriteError(f"{what}: refers to segment {number} but no SEG was given")
    known = [int(s.SegmentNumber) for s in seg.SegmentSequence]
    if number not in known:
        raise WriteError(f"{what}: segment {number} not in the SEG (segments {known})")
    if isinstance(source, Mammogram):
        frames = _seg_frames(seg, number)
        if not frames:
            raise WriteError(f"{what}: segment {number} is empty; a 2D finding needs a non-empty segment")
        ref = hd.sr.ReferencedSegmentationFrame(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=frames[0],
            segment_number=number,
            source_image=hd.sr.SourceImageForSegmentation(source.source.sop_class_uid, source.source.sop_instance_uid))
        return {"planar": True, "referenced_segment": ref}
    # Built by hand: ReferencedSegment.from_segmentation() fails on single-segment SEGs (highdicom 0.28.2).
    ref3d = hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                    segment_number=number,
                                    source_series=hd.sr.SourceSeriesForSegmentation(source.series_uid))
    return {"planar": False, "referenced_segment": ref3d}


def _group(source: SrSource, finding: Finding, context: ResultContext, study_uid: str,
           seg: Dataset | None) -> Any:
    what = f"SR finding {finding.tracking_id}"
    algorithm = algorithm_identification(context)
    common: dict[str, Any] = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=context.tracking_uid(study_uid, finding.tracking_id),
                                                        identifier=finding.tracking_id),
        "finding_type": finding.finding_type.concept(),
        "algorithm_id": algorithm,
        "finding_sites": [hd.sr.FindingSite(finding.finding_site.concept())] if finding.finding_site else None,
        "measurements": [hd.sr.Measurement(
            name=m.concept.concept(), value=float(m.value), unit=m.unit.concept(),
            derivation=m.derivation.concept() if m.derivation else None,
            method=m.method.concept() if m.method else None, algorithm_id=algorithm)
            for m in finding.measurements] or None,
        "qualitative_evaluations": [hd.sr.QualitativeEvaluation(e.concept.concept(), e.value.concept())
                                    for e in finding.evaluations] or None,
    }
    if finding.segment_number is not None:
        ref = _segment_reference(source, seg, finding.segment_number, what)
        if ref["planar"]:
            return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                referenced_segment=ref["referenced_segment"], **common)
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=ref["referenced_segment"], **common)
    if finding.region is not None:
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            referenced_region=_region(source, finding.region, what), **common)
    if finding.region3d is not None:
        volumetric, content = _region3d(source, finding.region3d, what)
        if volumetric:
            return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_volume_surface=content,
                                                                            **common)
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=content, **common)
    return hd.sr.MeasurementsAndQualitativeEvaluations(**common)


def write_sr(source: SrSource | Sequence[Mammogram], findings: Sequence[Finding], context: ResultContext, *,
             seg: Dataset | None = None, procedure: Code = IMAGING_PROCEDURE) -> Dataset:
    """A TID 1500 Comprehensive 3D SR of *findings* on *source*, in a new series of the source study.

    *source*: a Volume, a 2D image, or several 2D images (all listed as evidence; a finding's region
    names its image by ``slice_index``).
    *seg*: the SEG written for the same result, when findings refer to segments.
    *procedure*: the procedure reported (e.g. SCT "CT of chest").

    Raises:
        WriteError: duplicate tracking ids, a segment or slice that does not
            exist, or highdicom rejecting the content (its message kept).
    """
    if not isinstance(source, (Volume, Mammogram)):
        source = tuple(source)
    name = _series_name(source) if source else "?"
    header = source_header(_headers(source), f"SR for series {name}")
    study_uid = str(header.StudyInstanceUID)
    ids = [f.tracking_id for f in findings]
    if len(set(ids)) != len(ids):
        raise WriteError(f"SR for series {name}: tracking ids are not unique: {ids}")
    series_uid, sop_uid = context.uids(study_uid, "sr")
    try:
        groups = [_group(source, f, context, study_uid, seg) for f in findings]
        report = hd.sr.MeasurementReport(observation_context=device_observer(context),
                                         procedure_reported=procedure.concept(),
                                         imaging_measurements=groups or None)
        sr = hd.sr.Comprehensive3DSR(
            evidence=_headers(source) + ([seg] if seg is not None else []),
            content=report, series_instance_uid=series_uid, series_number=context.series_number("sr"),
            sop_instance_uid=sop_uid, instance_number=1, manufacturer=context.manufacturer,
            is_complete=True, is_final=True, is_verified=False,
            institution_name=context.institution_name or None,
            contributing_equipment=[contributing_equipment(context)])
    except (ValueError, TypeError) as exc:
        raise WriteError(f"SR for series {name}: {exc}") from exc
    _drop_segment_numbers_beside_frames(sr)
    LOGGER.info("study %s: %s %s wrote SR %s (%d findings)", study_uid, context.pipeline, context.model_version,
                sop_uid, len(findings))
    return finish(sr, context, "sr")


def _drop_segment_numbers_beside_frames(item: Dataset) -> None:
    """Remove Referenced Segment Number where a Referenced Frame Number is present (PS3.3 C.17.3.2.2 /
    Image SOP Instance Reference Macro: 1C, "shall not be present" then). highdicom 0.28.2 writes both
    in ReferencedSegmentationFrame; the frame alone identifies the segment."""
    for child in item.get("ContentSequence", []):
        for ref in child.get("ReferencedSOPSequence", []):
            if "ReferencedFrameNumber" in ref and "ReferencedSegmentNumber" in ref:
                del ref.ReferencedSegmentNumber
        _drop_segment_numbers_beside_frames(child)
