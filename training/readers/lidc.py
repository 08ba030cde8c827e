"""LIDC-IDRI (``lidc``): thoracic CT (DICOM) with the reader XML of up to four radiologists.

Published layout (Armato et al. 2011, Med Phys 38:915; TCIA collection LIDC-IDRI, XML schema and documentation
"LIDC-IDRI XML" on the TCIA wiki)::

    LIDC-IDRI/LIDC-IDRI-0001/<StudyInstanceUID>/<SeriesInstanceUID>/
      1-001.dcm ... (or 000001.dcm ...)          the CT series
      069.xml                                    LidcReadMessage (namespace http://www.nih.gov), beside the series:
        ResponseHeader/SeriesInstanceUid
        readingSession (one per reader, blinded then unblinded read)
          unblindedReadNodule
            noduleID
            characteristics/texture              1 ground-glass (non-solid) .. 3 part-solid (mixed) .. 5 solid
            roi (one per slice)
              imageZposition, imageSOP_UID, inclusion (TRUE; FALSE for an excluded hole); the slice is found by
              imageSOP_UID, else by imageZposition (within half a slice spacing)
              edgeMap/xCoord, edgeMap/yCoord     the outline, in pixel column/row (0-based)
            (a nodule < 3 mm is marked by one roi with one edgeMap point and no characteristics)
          nonNodule                              (other lesions >= 3 mm; not read)

Per reader and nodule: centre = mean of its included outline points (LPS mm), size = on the slice of largest
outline area, the mean of the long axis (largest distance between outline points) and the short axis (largest
extent perpendicular to it). Readers' marks are clustered: two marks of different readers are one nodule when their
centres lie closer than the larger of their radii (at least 3 mm). A nodule is kept when at least 50 % of the
readers (reading sessions of the XML; 4 in LIDC) marked it and at least one gave an outline; its centre and size are
the means over the readers with an outline, its type the median texture of the readers who gave one:
1-2 ground-glass, 3 part-solid, 4-5 solid (texture 2 "non-solid/mixed" counted as ground-glass).
Case id: the ``LIDC-IDRI-NNNN`` folder when the path has one, else the Series Instance UID.
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from imaging.volume import Volume, load_volume
from training.readers.case import Case, CaseError, Nodule, NoduleType, Skipped
from training.readers.common import DatasetError, attempt, sources, without_sources

LOGGER = logging.getLogger(__name__)
AGREEMENT = 0.5
MIN_DISTANCE_MM = 3.0


@dataclass(frozen=True)
class Mark:
    """One reader's nodule: reader index, centre (LPS mm), size (mm, None for a < 3 mm point), texture."""

    reader: int
    centre: np.ndarray
    diameter_mm: float | None
    texture: int | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _text(node: ET.Element, name: str) -> str | None:
    found = _children(node, name)
    return found[0].text.strip() if found and found[0].text else None


def texture_type(texture: int) -> NoduleType:
    """LIDC texture (1-5) to nodule type: 1-2 ground-glass, 3 part-solid, 4-5 solid."""
    if not 1 <= texture <= 5:
        raise CaseError(f"texture {texture}: LIDC texture is 1-5")
    return NoduleType.GROUND_GLASS if texture <= 2 else NoduleType.PART_SOLID if texture == 3 else NoduleType.SOLID


def _axes_mm(points: np.ndarray) -> float:
    """Mean of the long and short axis (mm) of outline points (n, 3) on one plane."""
    if len(points) < 2:
        return 0.0
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    long_axis = float(d[i, j])
    u = (points[j] - points[i]) / long_axis
    rest = points - points[i]
    perp = rest - np.outer(rest @ u, u)
    normal = np.cross(u, perp[np.argmax(np.linalg.norm(perp, axis=1))]) if np.any(perp) else None
    if normal is None or not np.any(normal):
        return long_axis / 2
    v = np.cross(normal / np.linalg.norm(normal), u)
    short_axis = float(np.ptp(rest @ v))
    return (long_axis + short_axis) / 2


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _slice_of(roi: ET.Element, volume: Volume, slices: dict[str, int]) -> int | None:
    """The slice of a roi: by its imageSOP_UID, else by imageZposition (within half a slice spacing; some LIDC XML
    files name SOP Instance UIDs that the published series does not hold)."""
    sop = _text(roi, "imageSOP_UID") or ""
    if sop in slices:
        return slices[sop]
    z = _text(roi, "imageZposition")
    if z is None:
        return None
    centres = volume.index_to_lps(np.column_stack([np.arange(volume.shape[0]), np.zeros((volume.shape[0], 2))]))[:, 2]
    k = int(np.argmin(np.abs(centres - float(z))))
    return k if abs(centres[k] - float(z)) <= volume.spacing_mm[0] / 2 else None


def _mark(reader: int, nodule: ET.Element, volume: Volume, slices: dict[str, int]) -> Mark:
    per_slice = []
    for roi in _children(nodule, "roi"):
        if (_text(roi, "inclusion") or "TRUE").upper() != "TRUE":
            continue
        k = _slice_of(roi, volume, slices)
        if k is None:
            raise CaseError(f"reader {reader + 1} nodule {_text(nodule, 'noduleID')}: roi on image "
                            f"{_text(roi, 'imageSOP_UID')}, which is not a slice of the series (nor its z position)")
        cr = np.array([[float(_text(e, "xCoord") or "nan"), float(_text(e, "yCoord") or "nan")]
                       for e in _children(roi, "edgeMap")])
        krc = np.column_stack([np.full(len(cr), k), cr[:, 1], cr[:, 0]])
        per_slice.append((volume.index_to_lps(krc), cr))
    if not per_slice:
        raise CaseError(f"reader {reader + 1} nodule {_text(nodule, 'noduleID')}: no included roi")
    centre = np.concatenate([p for p, _ in per_slice]).mean(axis=0)
    outlined = [(p, cr) for p, cr in per_slice if len(cr) >= 3]
    diameter = _axes_mm(max(outlined, key=lambda pc: _area(pc[1]))[0]) if outlined else None
    characteristics = _children(nodule, "characteristics")
    texture = _text(characteristics[0], "texture") if characteristics else None
    return Mark(reader, centre, diameter, int(texture) if texture and texture.isdigit() else None)


def cluster(marks: list[Mark]) -> list[list[Mark]]:
    """Marks of different readers grouped into nodules (single linkage, see the module docstring)."""
    parent = list(range(len(marks)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(marks):
        for j in range(i + 1, len(marks)):
            b = marks[j]
            if a.reader == b.reader:
                continue
            reach = max(MIN_DISTANCE_MM, (a.diameter_mm or 0) / 2, (b.diameter_mm or 0) / 2)
            if np.linalg.norm(a.centre - b.centre) < reach:
                parent[find(i)] = find(j)
    groups: dict[int, list[Mark]] = {}
    for i, m in enumerate(marks):
        groups.setdefault(find(i), []).append(m)
    return list(groups.values())


def consensus(groups: list[list[Mark]], readers: int) -> list[Nodule]:
    """Nodules marked by >= 50 % of *readers*, at least one with an outline."""
    out = []
    for group in groups:
        outlined = [m for m in group if m.diameter_mm is not None]
        if len({m.reader for m in group}) < AGREEMENT * readers or not outlined:
            continue
        textures = sorted(m.texture for m in group if m.texture is not None)
        kind = texture_type(int(np.round(np.median(textures)))) if textures else None
        centre = np.mean([m.centre for m in outlined], axis=0)
        out.append(Nodule(tuple(float(v) for v in centre),  # type: ignore[arg-type]
                          float(np.mean([m.diameter_mm for m in outlined])), kind))
    return out


def _is_lidc(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"LidcReadMessage" in fh.read(4096)
    except OSError:
        return False


def read(root: Path) -> Iterator[Case | Skipped]:
    xmls = [p for p in sorted(root.rglob("*.xml")) if _is_lidc(p)]
    if not xmls:
        raise DatasetError("no LIDC reader XML (LidcReadMessage) found beside a DICOM series (LIDC-IDRI layout)")
    for xml in xmls:
        patient = next((part for part in reversed(xml.parts) if re.fullmatch(r"LIDC-IDRI-\d+", part)), None)
        case_id = patient or xml.relative_to(root).as_posix()
        yield attempt(case_id, _case, root, xml, case_id)


def _case(root: Path, xml: Path, case_id: str) -> Case:
    try:
        message = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise CaseError(f"{xml.name}: not well-formed XML ({exc})") from None
    header = _children(message, "ResponseHeader")
    series_uid = (_text(header[0], "SeriesInstanceUid") if header else None) or ""
    files = []
    for path in sorted(p for p in xml.parent.iterdir() if p.is_file() and p != xml):
        try:
            if str(dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]).SeriesInstanceUID) \
                    == series_uid:
                files.append(path)
        except (InvalidDicomError, OSError, AttributeError, EOFError) as exc:
            LOGGER.debug("%s: %s beside the XML is not part of the series (%s)", case_id, path.name, type(exc).__name__)
    if not files:
        raise CaseError(f"{xml.name}: series {series_uid or '(none named)'} is not beside the XML")
    volume = load_volume(files)
    slices = {s.sop_instance_uid: k for k, s in enumerate(volume.sources) if s is not None}
    sessions = _children(message, "readingSession")
    if not sessions:
        raise CaseError(f"{xml.name}: no readingSession")
    marks = [_mark(reader, nodule, volume, slices) for reader, session in enumerate(sessions)
             for nodule in _children(session, "unblindedReadNodule")]
    nodules = consensus(cluster(marks), len(sessions))
    return Case(case_id, without_sources(volume), nodules=tuple(nodules), sources=sources(root, [*files, xml]))
