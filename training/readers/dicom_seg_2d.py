"""Projection images of a ``dicom-seg`` dataset (mammograms): one case per image a SEG refers to.

A mammography series holds several images (left and right, CC and MLO), each its own 2D frame without a patient
position, so it is not one volume: each image that a Segmentation labels is a case of its own (case id: its SOP
Instance UID), read as :func:`training.readers.common.image_2d` reads a 2D DICOM image.

- Labels: the SEG frames whose Source Image (Derivation Image Sequence of the frame) is the image, per segment
  (Segment Identification Sequence); BINARY, or FRACTIONAL at >= half the maximum fractional value; a frame must
  have the image's size. Values per Segment Label, in segment order (e.g. ``mass``, ``calcification``).
- Laterality and view: the image's header (:func:`imaging.mammo.laterality_of`, :func:`imaging.mammo.view_of`).
- Density and assessment: a CSV sidecar ``labels.csv`` anywhere in the folder, one row per image, columns
  ``SOPInstanceUID`` and ``density`` (BI-RADS ``a``-``d``, upper or lower case, or ACR ``1``-``4``), optionally
  ``assessment`` (BI-RADS ``0``-``6``). An image without a density there takes it from a TID 1500 SR whose evidence
  names its series: a Measurement Group with a coded Breast composition (DCM 111006) of CID 6000 (SCT 129716005
  almost entirely fat = a, 129717001 scattered = b, 129718006 heterogeneously dense = c, 129719003 extremely
  dense = d), the group's Finding Site (SCT 80248007 left / 73056007 right breast) naming the breast; a group of
  both breasts or without a site applies where no per-breast group does (this project's mammography SR writes
  both). Otherwise the image has no density label.

Skipped with a reason: an image no SEG frame refers to, a frame of another size, an empty label, no laterality or
view in the header, a density value outside a-d / 1-4.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.mammo import laterality_of, view_of
from imaging.series import InstanceHeader
from training.readers.case import Case, CaseError, ImageLabels, LabelMap, Skipped
from training.readers.common import attempt, display_labels, image_2d, read_csv, sources
from training.readers.srpoints import FINDING_SITE, groups

SIDECAR = "labels.csv"
_DENSITY = {"a": "a", "b": "b", "c": "c", "d": "d", "1": "a", "2": "b", "3": "c", "4": "d"}
BREAST_COMPOSITION = "111006"
_COMPOSITION = {"129716005": "a", "129717001": "b", "129718006": "c", "129719003": "d"}
_BREAST = {"80248007": "L", "73056007": "R"}


def is_projection(headers: Sequence[InstanceHeader]) -> bool:
    """True for a series of 2D projection images (no Image Position (Patient); MG, DX, CR)."""
    return all("ImagePositionPatient" not in h.dataset and str(h.dataset.get("Modality", "")) in ("MG", "DX", "CR")
               for h in headers)


def _frame_sources(ds: Dataset) -> list[tuple[str, int]]:
    """(source SOP Instance UID, segment number) of each frame of a SEG (per-frame functional groups, else the
    shared ones: a one-segment SEG may name its segment there)."""
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    out = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        sop = ""
        for group in (frame, shared):
            for derivation in (group.get("DerivationImageSequence", []) if group is not None else []):
                for source in derivation.get("SourceImageSequence", []):
                    sop = sop or str(source.ReferencedSOPInstanceUID)
        number = next((int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for g in (frame, shared)
                       if g is not None and "SegmentIdentificationSequence" in g), 0)
        out.append((sop, number))
    return out


def sr_densities(srs: Sequence[tuple[Path, Dataset]]) -> dict[str, str]:
    """Breast -> BI-RADS density (``L``, ``R``, and ``*`` for both breasts) from the SRs (see the module)."""
    out: dict[str, str] = {}
    for _, header in sorted(srs, key=lambda item: str(item[1].SOPInstanceUID)):
        for group in groups(header):
            coded = {}
            for item in group.get("ContentSequence", []):
                if item.get("ValueType") == "CODE" and item.get("ConceptNameCodeSequence"):
                    coded[str(item.ConceptNameCodeSequence[0].CodeValue)] = str(item.ConceptCodeSequence[0].CodeValue)
            category = _COMPOSITION.get(coded.get(BREAST_COMPOSITION, ""))
            if category is not None:
                site = next((coded[k] for k in FINDING_SITE if k in coded), "")
                out[_BREAST.get(site, "*")] = category
    return out


def _sidecar(root: Path) -> tuple[dict[str, dict[str, str]], list[Path]]:
    files = sorted(root.rglob(SIDECAR))
    rows: dict[str, dict[str, str]] = {}
    for path in files:
        for row in read_csv(path):
            if row.get("SOPInstanceUID"):
                rows[row["SOPInstanceUID"]] = row
    return rows, files


def projection_cases(root: Path, headers: Sequence[InstanceHeader], segs: Sequence[tuple[Path, Dataset]],
                     srs: Sequence[tuple[Path, Dataset]] = ()) -> Iterator[Case | Skipped]:
    """The cases of one series of projection images (see the module docstring)."""
    rows, sidecars = _sidecar(root)
    reported = sr_densities(srs)
    frames = [(path, ds, _frame_sources(ds)) for path, ds in segs]
    for header in sorted(headers, key=lambda h: str(h.dataset.SOPInstanceUID)):
        sop = str(header.dataset.SOPInstanceUID)
        mine = [(path, ds) for path, ds, refs in frames if any(s == sop for s, _ in refs)]
        if not mine:
            yield Skipped(sop, "no SEG frame refers to this image")
            continue
        yield attempt(sop, _case, root, header, mine, rows.get(sop), sidecars, (reported, list(srs)))


def _labels(path: Path, sop: str, shape: tuple[int, int], voxels: np.ndarray, names: dict[str, int]) -> None:
    ds = dcmread(path)
    pixels = ds.pixel_array
    pixels = pixels[np.newaxis] if pixels.ndim == 2 else pixels
    if pixels.shape[1:] != shape:
        raise CaseError(f"SEG {ds.SOPInstanceUID}: frames of {pixels.shape[1]}x{pixels.shape[2]} on an image of "
                        f"{shape[0]}x{shape[1]}")
    fractional = str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL"
    cut = float(ds.get("MaximumFractionalValue", 255)) / 2 if fractional else 0.5
    label_of = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) or f"segment {int(s.SegmentNumber)}"
                for s in ds.SegmentSequence}
    for frame, (source, number) in zip(pixels, _frame_sources(ds)):
        if source == sop and number in label_of:
            value = names.setdefault(label_of[number], len(names) + 1)
            voxels[frame >= cut] = value


def _case(root: Path, header: InstanceHeader, segs: Sequence[tuple[Path, Dataset]], row: dict[str, str] | None,
          sidecars: list[Path], reported: tuple[dict[str, str], list[tuple[Path, Dataset]]]) -> Case:
    sop = str(header.dataset.SOPInstanceUID)
    image, spacing = image_2d(header.path)
    voxels = np.zeros(image.shape[1:], dtype=np.int16)
    names: dict[str, int] = {}
    for path, _ in sorted(segs, key=lambda item: str(item[1].SOPInstanceUID)):
        _labels(path, sop, image.shape[1:], voxels, names)  # type: ignore[arg-type]
    if not voxels.any():
        raise CaseError(f"every SEG segment on image {sop} is empty")
    density, assessment = None, None
    if row is not None:
        text = row.get("density", "").strip().lower()
        if text and text not in _DENSITY:
            raise CaseError(f"{SIDECAR}: density {text!r} for image {sop}: expected a-d or 1-4")
        density, assessment = _DENSITY.get(text), row.get("assessment", "").strip().upper() or None
    laterality = laterality_of(header.dataset)
    densities, srs = reported
    from_sr = density is None and (laterality in densities or "*" in densities)
    if from_sr:
        density = densities.get(laterality, densities.get("*"))
    labels = ImageLabels(density=density, assessment=assessment, laterality=laterality, view=view_of(header.dataset),
                         extra=(("pixel_spacing", spacing), *display_labels(header.path)))
    label = LabelMap(voxels[np.newaxis], {v: k for k, v in names.items()})
    return Case(sop, image, label, image_labels=labels,
                sources=sources(root, [header.path, *(p for p, _ in segs), *(sidecars if row else []),
                                       *(p for p, _ in srs if from_sr)]))
