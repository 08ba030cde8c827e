"""DICOM series with DICOM SEG labels and TID 1500 SR point labels (``dicom-seg``): a hospital's own studies.

Layout: a folder tree of DICOM files (Part 10), any names and depth, as a PACS export, ``aiws dataset pull``,
3D Slicer (Quantitative Reporting / dcmqi), OHIF or MONAI Label leave them:

- image series (CT, MR …): every instance of one Series Instance UID is one volume
  (:func:`imaging.volume.load_volume`: slices sorted by position, geometry checked);
- Segmentation objects (Modality SEG, PS3.3 A.51): the series they label is named by Referenced Series Sequence
  (Common Instance Reference module), else found from the Source Image Sequence of their frames; frames are placed
  by Plane Position (Patient) (:func:`imaging.segread.read_seg`), so omitted empty frames and any frame order work;
  BINARY and FRACTIONAL (>= 0.5) segmentations;
- Structured Reports (Modality SR, TID 1500) whose evidence (Current Requested Procedure Evidence Sequence) names
  the series: nodules and calcified lesions per vessel as point labels (:mod:`training.readers.srpoints`).

One case per image series that a SEG or an SR refers to; its id is the Series Instance UID. Label values are
given per segment label (segments of the same label in several SEGs share a value; a segment whose Anatomic Region
is a coronary artery, LM/LAD/LCX/RCA by SNOMED CT code, is named ``"<vessel> calcium"``), in the order of the SEG's
SOP Instance UID and segment number; where segments overlap the later one wins. Skipped with a reason: a SEG or
SR whose series is not in the folder, a SEG off the series' geometry (another frame of reference, orientation,
spacing, or a frame between slices), a series that cannot be read as a volume, an empty label, a point outside the
image, a file that is not DICOM; an image series that nothing labels is listed as skipped too. Projection images
(mammograms: no patient position) give one case per image a SEG labels (:mod:`training.readers.dicom_seg_2d`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from imaging.errors import ImagingError
from imaging.segread import read_seg
from imaging.series import InstanceHeader, read_instance
from imaging.volume import Volume, load_volume
from training.readers.case import Case, CaseError, LabelMap, Skipped
from training.readers.common import DatasetError, attempt, sources, without_sources
from training.readers.dicom_seg_2d import SIDECAR, is_projection, projection_cases
from training.readers.srpoints import VESSEL_CODES, point_labels

LOGGER = logging.getLogger(__name__)


@dataclass
class _Index:
    series: dict[str, list[InstanceHeader]] = field(default_factory=dict)
    sop_to_series: dict[str, str] = field(default_factory=dict)
    segs: list[tuple[Path, Dataset]] = field(default_factory=list)
    srs: list[tuple[Path, Dataset]] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)


def _index(root: Path) -> _Index:
    index = _Index()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = read_instance(path)
            ds = header.dataset
            modality, series_uid, sop_uid = str(ds.Modality), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        except (InvalidDicomError, ImagingError, OSError, EOFError, AttributeError, ValueError):
            index.unreadable.append(path)
            continue
        if modality == "SEG":
            index.segs.append((path, ds))
        elif modality == "SR":
            index.srs.append((path, ds))
        else:
            index.series.setdefault(series_uid, []).append(header)
            index.sop_to_series[sop_uid] = series_uid
    return index


def _seg_series(ds: Dataset, index: _Index) -> str | None:
    for item in ds.get("ReferencedSeriesSequence", []):
        return str(item.SeriesInstanceUID)
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = index.sop_to_series.get(str(source.ReferencedSOPInstanceUID))
                if uid:
                    return uid
    return None


def _sr_series(ds: Dataset, index: _Index) -> list[str]:
    out = []
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            if str(series.SeriesInstanceUID) in index.series:
                out.append(str(series.SeriesInstanceUID))
    return out


def read(root: Path) -> Iterator[Case | Skipped]:
    index = _index(root)
    if not index.series:
        raise DatasetError("no DICOM image series in the folder (dicom-seg layout)")
    for path in index.unreadable:
        if path.name != SIDECAR:  # the density sidecar of projection images is read by dicom_seg_2d
            yield Skipped(path.relative_to(root).as_posix(), "not a DICOM file with Modality, Series and SOP Instance UIDs")
    labels: dict[str, tuple[list[tuple[Path, Dataset]], list[tuple[Path, Dataset]]]] = {}
    for path, ds in index.segs:
        uid = _seg_series(ds, index)
        if uid is None or uid not in index.series:
            yield Skipped(str(ds.SOPInstanceUID), f"SEG references series {uid or '(none)'}, which is not an image "
                                                  "series of the dataset")
            continue
        labels.setdefault(uid, ([], []))[0].append((path, ds))
    for path, ds in index.srs:
        uids = _sr_series(ds, index)
        if not uids:
            yield Skipped(str(ds.SOPInstanceUID), "SR evidence names no image series of the dataset")
        for uid in uids:
            labels.setdefault(uid, ([], []))[1].append((path, ds))
    for uid, headers in index.series.items():
        if uid not in labels:
            yield Skipped(uid, "no SEG or SR of the dataset refers to this series")
            continue
        segs, srs = labels[uid]
        if is_projection(headers):  # mammograms: one case per labelled image (training.readers.dicom_seg_2d)
            yield from projection_cases(root, headers, segs, srs)
            continue
        yield attempt(uid, _case, root, uid, headers, segs, srs)


def _case(root: Path, uid: str, headers: list[InstanceHeader], segs: list[tuple[Path, Dataset]],
          srs: list[tuple[Path, Dataset]]) -> Case:
    volume = load_volume(headers)  # headers read once by _index: the files are opened again for pixels only
    paths = [h.path for h in headers]
    label, masks = _labels(volume, segs)

    def segment_centre(sop_uid: str, number: int) -> tuple[float, float, float] | None:
        mask = masks.get((sop_uid, number))
        if mask is None or not mask.any():
            return None
        return tuple(float(v) for v in volume.index_to_lps(np.argwhere(mask).mean(axis=0)[None])[0])  # type: ignore[return-value]

    nodules, calcium = [], []
    for _, header in sorted(srs, key=lambda item: str(item[1].SOPInstanceUID)):
        n, c = point_labels(dcmread(_path_of(header, srs)), volume, segment_centre)
        nodules += n
        calcium += c
    return Case(uid, without_sources(volume), label, nodules=tuple(nodules), calcium=tuple(calcium),
                sources=sources(root, [*paths, *(p for p, _ in segs), *(p for p, _ in srs)]))


def _path_of(header: Dataset, items: list[tuple[Path, Dataset]]) -> Path:
    return next(p for p, ds in items if ds is header)


def _segment_name(seg: Dataset, number: int, label: str) -> str:
    """A segment's label value name: ``"<vessel> calcium"`` when its Anatomic Region is a coronary artery (SNOMED CT
    codes of :data:`training.readers.srpoints.VESSEL_CODES`), else its Segment Label (else ``segment N``)."""
    item = next((s for s in seg.get("SegmentSequence", []) if int(s.SegmentNumber) == number), None)
    regions = [str(c.CodeValue) for c in (item.get("AnatomicRegionSequence", []) if item is not None else [])]
    vessel = next((VESSEL_CODES[c] for c in regions if c in VESSEL_CODES), None)
    return f"{vessel} calcium" if vessel else label or f"segment {number}"


def _labels(volume: Volume, segs: list[tuple[Path, Dataset]]
            ) -> tuple[LabelMap | None, dict[tuple[str, int], np.ndarray]]:
    if not segs:
        return None, {}
    voxels = np.zeros(volume.shape, dtype=np.int16)
    values: dict[str, int] = {}
    masks: dict[tuple[str, int], np.ndarray] = {}
    for path, header in sorted(segs, key=lambda item: str(item[1].SOPInstanceUID)):
        for segment in read_seg(dcmread(path), volume):
            name = _segment_name(header, segment.number, segment.label)
            value = values.setdefault(name, len(values) + 1)
            voxels[segment.mask] = value
            masks[(str(header.SOPInstanceUID), segment.number)] = segment.mask
    if not voxels.any():
        raise CaseError(f"every segment of the {len(segs)} SEG(s) of series {volume.series_uid} is empty")
    return LabelMap(voxels, {v: k for k, v in values.items()}), masks
