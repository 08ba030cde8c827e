"""orCaScore (``orcascore``): coronary calcium per vessel on non-contrast cardiac CT (MetaImage).

Published layout (Wolterink et al. 2016, Med Phys 43:2361; https://orcascore.grand-challenge.org, data page
http://orcascore.isi.uu.nl/data/)::

    Training Set/
      Images/TRV1P1CTI.mhd (+ .raw)              non-contrast CT (calcium scoring scan) of patient 1, vendor 1
      Images/TRV1P1CTAI.mhd (+ .raw)             the contrast CTA of the same patient (not read)
      Reference standard/TRV1P1R.mhd (+ .raw)    labels on the CT grid: 0 background, 1 LAD (left main
                                                 calcifications are labelled LAD), 2 LCX, 3 RCA
                                                 (4 = calcification of undetermined artery, in submissions only)

A reference without calcium is a valid label (score 0).
One case per ``...CTI.mhd`` with a reference (test-set images have none and are skipped with that reason).
Calcified lesions are the 3-D 6-connected components of each vessel's label, as the reference standard defines a
lesion; each is given as a :class:`CalciumLesion` with its centre (LPS mm) and volume (mm³).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage

from training.readers.case import CalciumLesion, Case, CaseError, LabelMap, Skipped
from training.readers.common import DatasetError, attempt, sources, without_sources
from training.readers.mhd import read_mhd

LABELS = {1: "LAD", 2: "LCX", 3: "RCA", 4: "undetermined coronary artery"}
VESSEL_OF_LABEL = {1: "LAD", 2: "LCX", 3: "RCA"}


def read(root: Path) -> Iterator[Case | Skipped]:
    images = sorted(root.rglob("*CTI.mhd"))
    images = [p for p in images if not p.name.endswith("CTAI.mhd")]
    if not images:
        raise DatasetError("no Images/<id>CTI.mhd found (orCaScore layout)")
    references = {p.name.removesuffix("R.mhd"): p for p in root.rglob("*R.mhd")}
    for image in images:
        case_id = image.name.removesuffix("CTI.mhd")
        yield attempt(case_id, _case, root, image, references.get(case_id))


def lesions(label: np.ndarray, volume_affine: np.ndarray, voxel_mm3: float) -> tuple[CalciumLesion, ...]:
    """One lesion per 6-connected component of each vessel label, centre at the component's centroid."""
    out = []
    for value, vessel in VESSEL_OF_LABEL.items():
        components, n = ndimage.label(label == value)
        for index in range(1, n + 1):
            krc = np.argwhere(components == index).mean(axis=0)
            lps = (volume_affine @ np.append(krc, 1.0))[:3]
            out.append(CalciumLesion(vessel, tuple(float(v) for v in lps),  # type: ignore[arg-type]
                                     volume_mm3=float((components == index).sum() * voxel_mm3)))
    return tuple(out)


def _case(root: Path, image_path: Path, reference: Path | None) -> Case:
    if reference is None:
        raise CaseError(f"no reference standard <id>R.mhd for {image_path.name} (a test-set image?)")
    image, files = read_mhd(image_path)
    label, label_files = read_mhd(reference)
    if label.shape != image.shape or not np.allclose(label.affine, image.affine, atol=1e-3):
        raise CaseError(f"{reference.name}: grid {label.shape} does not match the image {image.shape}")
    values = label.voxels.astype(np.int16)
    unknown = sorted(set(np.unique(values).tolist()) - {0, *LABELS})
    if unknown:
        raise CaseError(f"{reference.name}: label values {unknown} are not orCaScore vessel labels 1-4")
    calcium = lesions(values, image.affine, image.voxel_volume_mm3)
    return Case(image_path.name.removesuffix("CTI.mhd"), without_sources(image), LabelMap(values, LABELS, may_be_empty=True),
                calcium=calcium, sources=sources(root, [*files, *label_files]))
