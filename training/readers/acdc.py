"""ACDC (``acdc``): Automated Cardiac Diagnosis Challenge, cine short-axis MRI at ED and ES.

Published layout (Bernard et al. 2018, IEEE TMI 37:2514; https://www.creatis.insa-lyon.fr/Challenge/acdc/)::

    training/patient001/
      Info.cfg                         ED: 1 / ES: 12 / Group: DCM / Height: 184.0 / NbFrame: 30 / Weight: 95.0
      patient001_4d.nii.gz             the whole cine (not read)
      patient001_frame01.nii.gz        the ED frame (frame numbers are 1-based, two digits)
      patient001_frame01_gt.nii.gz     its labels: 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity
      patient001_frame12.nii.gz        the ES frame
      patient001_frame12_gt.nii.gz

Two cases per patient, ``patient001_ED`` and ``patient001_ES``, with phase, height (cm), weight (kg), group
(diagnosis) and frame number as image-level labels. The folder holding ``patientNNN/`` folders may be the
dataset folder itself or any folder below it (``training/``, ``testing/``).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from training.readers.case import Case, CaseError, ImageLabels, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    label_map,
    nifti_frame,
    sources,
    without_sources,
)

LABELS = {1: "right ventricle", 2: "myocardium", 3: "left ventricle"}


def read_info(path: Path) -> dict[str, str]:
    """``Info.cfg`` as keys and values (``ED: 1`` lines).

    Raises:
        CaseError: a line that is not ``Key: value``, or ED/ES missing.
    """
    info: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise CaseError(f"{path.name}: line {line[:30]!r} is not 'Key: value'")
        info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        if not info.get(key, "").isdigit():
            raise CaseError(f"{path.name}: {key} frame number missing or not a whole number")
    return info


def read(root: Path) -> Iterator[Case | Skipped]:
    infos = sorted(root.rglob("Info.cfg"))
    if not infos:
        raise DatasetError("no patientNNN/Info.cfg found (ACDC layout)")
    for info_path in infos:
        patient = info_path.parent.name
        try:
            info = read_info(info_path)
        except (CaseError, OSError, UnicodeDecodeError) as exc:
            yield Skipped(patient, str(exc))
            continue
        for phase in ("ED", "ES"):
            case_id = f"{patient}_{phase}"
            yield attempt(case_id, _case, root, info_path, info, phase, case_id)


def _case(root: Path, info_path: Path, info: dict[str, str], phase: str, case_id: str) -> Case:
    folder, patient = info_path.parent, info_path.parent.name
    frame = int(info[phase])
    image_path = folder / f"{patient}_frame{frame:02d}.nii.gz"
    label_path = folder / f"{patient}_frame{frame:02d}_gt.nii.gz"
    for p in (image_path, label_path):
        if not p.is_file():
            raise CaseError(f"{p.name}: missing ({phase} is frame {frame} in Info.cfg)")
    image = nifti_frame(image_path)
    label = label_map(image, nifti_frame(label_path), LABELS, label_path.name)
    extra = [("frame", str(frame))] + [(name, info[key]) for key, name in
                                       (("Height", "height_cm"), ("Weight", "weight_kg"), ("Group", "group"),
                                        ("NbFrame", "frames")) if key in info]
    return Case(case_id, without_sources(image), label, image_labels=ImageLabels(phase=phase, extra=tuple(extra)),
                sources=sources(root, [info_path, image_path, label_path]))
