"""Dataset cases (:class:`training.readers.case.Case`) -> the lesion labeller's training samples and truth.

The samples are built exactly as the service builds the labeller's input (:mod:`models.coronary_ct.pipeline`):
the volume in the canonical axial layout (:func:`models.coronary_ct.volume_io.canonical_hu`), the candidate 2D
lesions of :func:`models.coronary_ct.calcium.find_lesions` (HU >= 130, >= 1 mm²) and their multi-scale patches
(:func:`models.coronary_ct.patches.lesion_patches`). Each candidate then gets a truth class
(:data:`models.coronary_ct.calcium.VESSEL_ORDER`: not coronary, LM, LAD, LCx, RCA), from, in this order:

1. a label map on the image grid (orCaScore reference, or the segments of a DICOM SEG): the majority label of the
   candidate's pixels among those labelled; a candidate with no labelled pixel is left to the points;
2. calcified lesions as points (TID 1500 SR: calcified plaque with a coronary Finding Site; the lesions of an
   orCaScore reference): each point goes to the nearest 3D plaque (2D candidates touching across slices,
   :func:`models.coronary_ct.labelling.plaque_ids`) whose centroid lies within *tolerance_mm*;
3. otherwise "not coronary": valve, annulus, aortic wall, bone, noise. A dataset that labels coronary calcium
   labels all of it (as orCaScore's reference standard does), so what it leaves unlabelled is not coronary.

Segment labels accepted (:func:`vessel_of_segment`, case-insensitive; words such as "calcium", "calcification",
"plaque", "lesion", "artery" are ignored): ``LM`` / ``left main``; ``LAD`` / ``left anterior descending``;
``LCX`` / ``LCx`` / ``CX`` / ``circumflex``; ``RCA`` / ``right coronary``, so this project's own SEG ("LAD calcium")
and orCaScore's values (LAD, LCX, RCA) read as they are. Labels naming a valve, the annulus, the aorta or bone
(``aortic valve calcification``, ``mitral annulus``, ``bone`` …) are explicit "not coronary" labels. Any other
label (e.g. orCaScore's "undetermined coronary artery") marks its candidates as unusable: they are left out of the
samples and of the scores. Arteries by SNOMED CT code (LM 3227004, LAD 59438005, LCX 57396003, RCA 13647002) are
read from the SR's Finding Site (:mod:`training.readers.srpoints`) and from a SEG segment's Anatomic Region: the
``dicom-seg`` reader names such a segment ``"<vessel> calcium"`` whatever its label (3D Slicer's "Segment_1" …).

A case is skipped (:class:`CaseSkipped`, with the reason) when it is not an axial stack, has no coronary label at
all (and no label map that may be empty, as a zero-score orCaScore reference), or when none of its labelled
lesions matches a candidate.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.coronary_ct.calcium import VESSEL_ORDER, Lesion, ScanGeometry, Vessel, find_lesions
from models.coronary_ct.labelling import plaque_ids
from models.coronary_ct.patches import lesion_patches
from models.coronary_ct.volume_io import Canonical, canonical_hu, scan_geometry
from models.errors import ModelError
from training.readers.case import Case

LOGGER = logging.getLogger(__name__)

#: Default distance (mm) from a labelled lesion's centre to a plaque's centroid for the two to match.
TOLERANCE_MM = 5.0
#: Class index of candidates left out (label of unknown vessel).
UNUSABLE = -1

_NOISE_WORDS = re.compile(r"\b(calcium|calcification|calcifications|calcified|plaque|lesion|lesions|artery|"
                          r"coronary|segment|score)\b")
_VESSEL_WORDS: tuple[tuple[Vessel, tuple[str, ...]], ...] = (
    (Vessel.LM, ("lm", "lmca", "left main", "left main stem")),
    (Vessel.LAD, ("lad", "left anterior descending", "anterior descending")),
    (Vessel.LCX, ("lcx", "cx", "circumflex", "left circumflex")),
    (Vessel.RCA, ("rca", "right", "right main")),
)
_NOT_CORONARY = re.compile(r"valve|valvular|annulus|annular|aorta|aortic|mitral|bone|rib|spine|vertebra|sternum|"
                           r"not coronary|non-coronary|noncoronary|extra-coronary")
_VESSEL_OF_READER = {"LM": Vessel.LM, "LAD": Vessel.LAD, "LCX": Vessel.LCX, "RCA": Vessel.RCA}


class CaseSkipped(Exception):
    """A case that gives no training sample; the message is the reason."""


def vessel_of_segment(label: str) -> int:
    """The class index (:data:`VESSEL_ORDER`) a segment label stands for, or :data:`UNUSABLE`.

    >>> vessel_of_segment("LAD calcium"), vessel_of_segment("Aortic valve calcification"), vessel_of_segment("?")
    (2, 0, -1)
    """
    text = label.strip().lower().replace("_", " ")
    if _NOT_CORONARY.search(text):
        return Vessel.NONE.index
    core = " ".join(_NOISE_WORDS.sub(" ", text).split())
    for vessel, words in _VESSEL_WORDS:
        if core in words:
            return vessel.index
    return UNUSABLE


@dataclass(frozen=True, eq=False)
class CoronaryCase:
    """One case as the labeller sees it: candidates (canonical layout), their patches and their truth classes.

    *truth*: per candidate a class index of :data:`VESSEL_ORDER`, or :data:`UNUSABLE` (left out).
    *labelled* / *matched*: labelled lesions of the case and how many of them a candidate carries.
    """

    case_id: str
    geometry: ScanGeometry
    shape: tuple[int, int, int]
    lesions: tuple[Lesion, ...]
    truth: np.ndarray  # (n,) int64
    patches: np.ndarray  # (n, 3, 7, 24, 24) float16
    labelled: int
    matched: int

    @property
    def usable(self) -> np.ndarray:
        """Indices of the candidates with a truth class."""
        return np.nonzero(self.truth != UNUSABLE)[0]

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(patches float32 (m, 3, 7, 24, 24), classes int64 (m,)) of the usable candidates."""
        keep = self.usable
        return self.patches[keep].astype(np.float32), self.truth[keep]

    def truth_labels(self) -> list[Vessel]:
        """The truth as scoring labels (unusable candidates count as not coronary)."""
        return [VESSEL_ORDER[max(int(t), 0)] for t in self.truth]


def _label_classes(case: Case, canon: Canonical) -> tuple[np.ndarray | None, dict[int, int]]:
    """The case's label map in the canonical layout and its value -> class index map (None without a map)."""
    if case.label is None:
        return None, {}
    classes = {int(v): vessel_of_segment(str(name)) for v, name in case.label.names.items()}
    return np.ascontiguousarray(canon.apply(case.label.voxels)), classes


def _from_label_map(lesions: Sequence[Lesion], label: np.ndarray, classes: dict[int, int]) -> np.ndarray:
    """Per candidate: the majority class of its labelled pixels, or -2 when none of its pixels is labelled."""
    out = np.full(len(lesions), -2, dtype=np.int64)
    for n, les in enumerate(lesions):
        values = label[les.slice_index, les.pixels[:, 0], les.pixels[:, 1]]
        values = values[values != 0]
        if values.size:
            counts = np.bincount(values.astype(np.int64))
            out[n] = classes.get(int(np.argmax(counts)), UNUSABLE)
    return out


def _canonical_lps(case: Case, canon: Canonical, shape: tuple[int, int, int], krc: np.ndarray) -> np.ndarray:
    """LPS mm of canonical (k, r, c) indices."""
    source = krc.astype(np.float64).copy()
    for axis, flipped in enumerate((canon.flip_k, canon.flip_r, canon.flip_c)):
        if flipped:
            source[:, axis] = shape[axis] - 1 - source[:, axis]
    return case.image.index_to_lps(source)


def _plaque_centres(case: Case, canon: Canonical, lesions: Sequence[Lesion], ids: np.ndarray,
                    shape: tuple[int, int, int]) -> dict[int, np.ndarray]:
    """Area-weighted centroid (LPS mm) of each 3D plaque."""
    krc = np.array([(les.slice_index, *les.centroid_rc) for les in lesions], dtype=np.float64)
    lps = _canonical_lps(case, canon, shape, krc)
    areas = np.array([les.area_mm2 for les in lesions])
    return {int(p): (lps[ids == p] * areas[ids == p, None]).sum(axis=0) / areas[ids == p].sum()
            for p in np.unique(ids)}


def _from_points(case: Case, canon: Canonical, lesions: Sequence[Lesion], shape: tuple[int, int, int],
                 tolerance_mm: float) -> tuple[np.ndarray, int]:
    """Per candidate the class of the point matched to its plaque (-2: none), and the number of points matched."""
    out = np.full(len(lesions), -2, dtype=np.int64)
    if not case.calcium or not lesions:
        return out, 0
    ids = plaque_ids(lesions, shape)
    centres = _plaque_centres(case, canon, lesions, ids, shape)
    plaques = np.array(sorted(centres))
    points = np.array([c.centre_lps_mm for c in case.calcium], dtype=np.float64)
    distance = np.linalg.norm(points[:, None, :] - np.stack([centres[p] for p in plaques])[None], axis=2)
    best: dict[int, tuple[float, int]] = {}  # plaque -> (distance, class)
    matched = 0
    for i, lesion in enumerate(case.calcium):
        j = int(np.argmin(distance[i]))
        if distance[i, j] > tolerance_mm:
            continue
        matched += 1
        cls = _VESSEL_OF_READER[lesion.vessel].index
        if int(plaques[j]) not in best or distance[i, j] < best[int(plaques[j])][0]:
            best[int(plaques[j])] = (float(distance[i, j]), cls)
    for plaque, (_, cls) in best.items():
        out[ids == plaque] = cls
    return out, matched


def _labelled_components(label: np.ndarray, classes: dict[int, int]) -> tuple[np.ndarray, int]:
    """3D components (26-connected) of the coronary-labelled voxels, and their count."""
    coronary = np.isin(label, [v for v, c in classes.items() if c > 0])
    return ndimage.label(coronary, structure=np.ones((3, 3, 3), dtype=bool))  # type: ignore[no-any-return]


def coronary_case(case: Case, tolerance_mm: float = TOLERANCE_MM, with_patches: bool = True) -> CoronaryCase:
    """The labeller's candidates, inputs and truth for *case* (see the module docstring). *with_patches* False:
    no network input (``patches`` is empty), to check a case cheaply.

    Raises:
        CaseSkipped: not an axial stack, no coronary label, or no labelled lesion matching a candidate.
    """
    try:
        hu, canon = canonical_hu(case.image)
        geometry = scan_geometry(case.image)
    except ModelError as exc:
        raise CaseSkipped(str(exc)) from exc
    shape: tuple[int, int, int] = hu.shape  # type: ignore[assignment]
    label, classes = _label_classes(case, canon)
    coronary_labels = [v for v, c in classes.items() if c > 0]
    may_be_empty = case.label is not None and case.label.may_be_empty
    if not case.calcium and not coronary_labels and not may_be_empty:
        names = sorted(str(n) for n in (case.label.names.values() if case.label is not None else ()))
        raise CaseSkipped("no coronary calcium label: no SR calcified lesion with a coronary Finding Site and no "
                          f"segment named by vessel (LM, LAD, LCX, RCA; segments: {names or 'none'})")
    lesions = find_lesions(hu, geometry)
    truth = np.full(len(lesions), Vessel.NONE.index, dtype=np.int64)
    by_points, points_matched = _from_points(case, canon, lesions, shape, tolerance_mm)
    truth = np.where(by_points != -2, by_points, truth)
    labelled, matched = len(case.calcium), points_matched
    if label is not None:
        by_map = _from_label_map(lesions, label, classes)
        truth = np.where(by_map != -2, by_map, truth)  # the map wins over points where it labels a candidate
        if not case.calcium:
            components, count = _labelled_components(label, classes)
            hit = {int(components[les.slice_index, les.pixels[:, 0], les.pixels[:, 1]].max()) for les in lesions}
            labelled, matched = count, len(hit - {0})
    if labelled and not matched:
        raise CaseSkipped(f"{labelled} labelled calcified lesion(s), none matches a calcium candidate "
                          f"(>= 130 HU, >= 1 mm², centroid within {tolerance_mm:g} mm)")
    if matched < labelled:
        LOGGER.info("case %s: %d of %d labelled lesions match no candidate", case.case_id, labelled - matched, labelled)
    patches = (lesion_patches(hu, geometry, lesions) if with_patches else np.zeros((0,), np.float32)).astype(np.float16)
    LOGGER.debug("case %s: %d candidates, classes %s", case.case_id, len(lesions),
                 np.bincount(truth[truth >= 0], minlength=len(VESSEL_ORDER)).tolist())
    return CoronaryCase(case.case_id, geometry, shape, tuple(lesions), truth, patches, labelled, matched)
