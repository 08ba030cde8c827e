"""Medical Segmentation Decathlon (``msd``): ``dataset.json`` + ``imagesTr/`` + ``labelsTr/`` (NIfTI).

Published layout (Antonelli et al. 2022, Nat Commun 13:4128; http://medicaldecathlon.com, the same in every
``TaskXX_Name.tar``)::

    TaskXX_Name/
      dataset.json        {"name", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "..."},
                           "numTraining", "training": [{"image": "./imagesTr/x_001.nii.gz",
                                                        "label": "./labelsTr/x_001.nii.gz"}, ...], "test": [...]}
      imagesTr/x_001.nii.gz
      labelsTr/x_001.nii.gz

Only the ``training`` entries are read (they have labels). The nnU-Net v2 variant of ``labels``
(``{"background": 0, "name": 1}``) is accepted too. Multi-channel (4-D) images are skipped with a reason.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from training.readers.case import Case, CaseError, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    label_map,
    nifti_frame,
    sources,
    without_sources,
)


def _labels(doc: dict, path: Path) -> dict[int, str]:  # type: ignore[type-arg]
    out: dict[int, str] = {}
    for key, value in dict(doc.get("labels") or {}).items():
        try:
            number, name = (int(key), str(value)) if str(key).isdigit() else (int(value), str(key))
        except (TypeError, ValueError):
            raise DatasetError(f"{path.name}: label entry {key!r}: {value!r} is neither 'N': name nor name: N") from None
        if number != 0:
            out[number] = name
    if not out:
        raise DatasetError(f"{path.name}: no foreground label named in 'labels'")
    return out


def read(root: Path) -> Iterator[Case | Skipped]:
    path = root / "dataset.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read ({type(exc).__name__}); MSD layout needs dataset.json") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path.name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc.get("training"), list):
        raise DatasetError(f"{path.name}: no 'training' list (MSD layout)")
    names = _labels(doc, path)
    for entry in doc["training"]:
        image_path = root / str(entry.get("image", ""))
        label_path = root / str(entry.get("label", ""))
        case_id = image_path.name.removesuffix(".gz").removesuffix(".nii")
        yield attempt(case_id, _case, root, case_id, image_path, label_path, names)


def _case(root: Path, case_id: str, image_path: Path, label_path: Path, names: dict[int, str]) -> Case:
    for p in (image_path, label_path):
        if not p.is_file():
            raise CaseError(f"{p.relative_to(root).as_posix()}: listed in dataset.json but missing")
    image = nifti_frame(image_path)
    label = label_map(image, nifti_frame(label_path), names, label_path.name)
    return Case(case_id, without_sources(image), label, sources=sources(root, [image_path, label_path]))
