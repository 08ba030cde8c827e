"""Point labels from a TID 1500 Measurement Report (DICOM SR): lung nodules and calcified lesions per vessel.

What is read, per Measurement Group (DCM 125007) of the report (PS3.16 TID 1500 / 1410 / 1411 / 1501):

- Finding (DCM 121071): SCT 27925004 "Nodule" gives a :class:`Nodule`; SCT 29483008 "Calcified atheromatous
  plaque" or 237897009 "Vascular calcification" with a Finding Site (SCT 363698007, or SRT G-C0E3) of a
  coronary artery (LM 3227004, LAD 59438005, LCX 57396003, RCA 13647002) gives a :class:`CalciumLesion`;
  groups with other findings or sites (e.g. the total over all arteries) are not point labels and are left out.
- Where: a SCOORD3D region (its centre, :func:`graphic_centre`, LPS mm), a SCOORD region with its image (its
  centre mapped by the image's slice in the volume), or a Referenced Segment (DCM 121214; centroid of that SEG segment's mask).
- Size: Diameter (SCT 81827009), else the mean of Long Axis (SCT 103339001) and Short Axis (SCT 103340004), in
  mm or cm (UCUM); a nodule without one is skipped with a reason.
- Nodule type: a coded evaluation whose value's meaning or value names solid, part-solid or ground-glass (as
  this project's lung report writes it, concept ``AIWS-LUNG-TYPE``).
- Agatston score (DCM 112058 Calcium score) of a calcified lesion, when given.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from pydicom.dataset import Dataset

from imaging.volume import Volume
from training.readers.case import CalciumLesion, CaseError, Nodule, NoduleType

NODULE = "27925004"
CALCIUM = {"29483008", "237897009"}
VESSEL_CODES = {"3227004": "LM", "59438005": "LAD", "57396003": "LCX", "13647002": "RCA"}
FINDING = "121071"
FINDING_SITE = {"363698007", "G-C0E3"}
DIAMETER, LONG_AXIS, SHORT_AXIS = "81827009", "103339001", "103340004"
CALCIUM_SCORE = "112058"
MEASUREMENT_GROUP = "125007"
_TYPE_WORDS = {"part-solid": NoduleType.PART_SOLID, "part_solid": NoduleType.PART_SOLID,
               "ground-glass": NoduleType.GROUND_GLASS, "ground_glass": NoduleType.GROUND_GLASS,
               "non-solid": NoduleType.GROUND_GLASS, "solid": NoduleType.SOLID}

#: Centroid (LPS mm) of segment *number* of the SEG *sop_uid*, or None when that SEG is not at hand.
SegmentCentre = Callable[[str, int], "tuple[float, float, float] | None"]


def _name(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeValue) if seq else ""


def _walk(items: list[Dataset]) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _walk(list(item.get("ContentSequence", [])))


def groups(sr: Dataset) -> list[Dataset]:
    """The Measurement Group containers of a report."""
    return [i for i in _walk(list(sr.get("ContentSequence", []))) if i.get("ValueType") == "CONTAINER"
            and _name(i) == MEASUREMENT_GROUP]


def _mm(item: Dataset) -> float | None:
    value = item.MeasuredValueSequence[0]
    unit = str(value.MeasurementUnitsCodeSequence[0].CodeValue)
    factor = {"mm": 1.0, "cm": 10.0}.get(unit)
    return None if factor is None else float(value.NumericValue) * factor


def graphic_centre(points: np.ndarray, graphic_type: str) -> np.ndarray:
    """Centre of SCOORD/SCOORD3D graphic data (n, 2 or 3): a CIRCLE's first point (its centre), the mean of the
    distinct vertices of a closed POLYLINE/POLYGON, else the mean of the points (POINT, MULTIPOINT, the axis end
    points of an ELLIPSE or ELLIPSOID)."""
    if graphic_type == "CIRCLE":
        return points[0]  # type: ignore[no-any-return]
    if graphic_type in ("POLYLINE", "POLYGON") and len(points) > 1 and np.allclose(points[0], points[-1]):
        points = points[:-1]
    return points.mean(axis=0)  # type: ignore[no-any-return]


def _centre(group: Dataset, volume: Volume, segment_centre: SegmentCentre) -> tuple[float, float, float]:
    by_sop = {s.sop_instance_uid: k for k, s in enumerate(volume.sources) if s is not None}
    for item in _walk(list(group.get("ContentSequence", []))):
        kind = item.get("ValueType")
        if kind == "SCOORD3D":
            pts = np.asarray([float(v) for v in item.GraphicData]).reshape(-1, 3)
            return tuple(float(v) for v in graphic_centre(pts, str(item.GraphicType)))  # type: ignore[return-value]
        if kind == "SCOORD":
            image = next((c for c in item.get("ContentSequence", []) if c.get("ValueType") == "IMAGE"), None)
            sop = str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) if image is not None else ""
            if sop not in by_sop:
                raise CaseError(f"SR region on image {sop or '?'}, which is not a slice of series {volume.series_uid}")
            pts = np.asarray([float(v) for v in item.GraphicData]).reshape(-1, 2)
            cr = graphic_centre(pts, str(item.GraphicType)) - 0.5  # SCOORD: (column, row), pixel centre at 0.5
            return tuple(float(v) for v in volume.index_to_lps(np.array([[by_sop[sop], cr[1], cr[0]]]))[0])  # type: ignore[return-value]
        if kind == "IMAGE" and "ReferencedSegmentNumber" in item.ReferencedSOPSequence[0]:
            ref = item.ReferencedSOPSequence[0]
            centre = segment_centre(str(ref.ReferencedSOPInstanceUID), int(ref.ReferencedSegmentNumber))
            if centre is None:
                raise CaseError(f"SR refers to segment {int(ref.ReferencedSegmentNumber)} of SEG "
                                f"{ref.ReferencedSOPInstanceUID}, which is not in the dataset or is empty")
            return centre
    raise CaseError("SR measurement group has no SCOORD3D, SCOORD or segment reference to place it")


def _codes(group: Dataset) -> tuple[dict[str, str], list[Dataset], list[Dataset]]:
    coded, nums, evaluations = {}, [], []
    for item in group.get("ContentSequence", []):
        kind, name = item.get("ValueType"), _name(item)
        if kind == "CODE":
            value = item.ConceptCodeSequence[0]
            coded[name] = str(value.CodeValue)
            evaluations.append(item)
        elif kind == "NUM" and item.get("MeasuredValueSequence"):
            nums.append(item)
    return coded, nums, evaluations


def _size(nums: list[Dataset]) -> float | None:
    by = {_name(n): _mm(n) for n in nums}
    if by.get(DIAMETER) is not None:
        return by[DIAMETER]
    long_axis, short_axis = by.get(LONG_AXIS), by.get(SHORT_AXIS)
    return None if long_axis is None or short_axis is None else (long_axis + short_axis) / 2


def _nodule_type(evaluations: list[Dataset]) -> NoduleType | None:
    for item in evaluations:
        value = item.ConceptCodeSequence[0]
        for text in (str(value.CodeValue).lower(), str(value.get("CodeMeaning", "")).lower()):
            for word, kind in _TYPE_WORDS.items():
                if text.startswith(word):
                    return kind
    return None


def point_labels(sr: Dataset, volume: Volume, segment_centre: SegmentCentre
                 ) -> tuple[list[Nodule], list[CalciumLesion]]:
    """Nodules and calcified lesions of *sr* placed on *volume*.

    Raises:
        CaseError: a nodule or lesion group that cannot be placed, or a nodule without a size in mm.
    """
    nodules, calcium = [], []
    for n, group in enumerate(groups(sr), start=1):
        coded, nums, evaluations = _codes(group)
        finding = coded.get(FINDING)
        site = next((coded[k] for k in FINDING_SITE if k in coded), None)
        if finding == NODULE:
            size = _size(nums)
            if size is None:
                raise CaseError(f"SR {sr.SOPInstanceUID} group {n}: nodule without a diameter in mm")
            nodules.append(Nodule(_centre(group, volume, segment_centre), size, _nodule_type(evaluations)))
        elif finding in CALCIUM and site in VESSEL_CODES:
            score = next((float(i.MeasuredValueSequence[0].NumericValue) for i in nums if _name(i) == CALCIUM_SCORE),
                         None)
            calcium.append(CalciumLesion(VESSEL_CODES[site], _centre(group, volume, segment_centre), agatston=score))
    return nodules, calcium
