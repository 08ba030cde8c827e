"""The cine segmentation task on the training framework: learns from ``dicom-seg``, ``acdc`` and ``mnms``.

A case is one cine frame (a short-axis stack, slices x rows x columns) with LV blood pool, LV myocardium and RV
blood pool labels. Label names are mapped by meaning, whatever the source calls them: ACDC ``left ventricle`` /
``myocardium`` / ``right ventricle``, M&Ms the same, a SEG's segment labels (``LV blood pool``, ``Left ventricle
myocardium``, ``RV``, ...): see :func:`class_of`. Samples are the labelled slices, each normalised as the service
normalises it (:func:`models.cardiac_mri.segment.normalise`), cropped around the labels (MONAI
``RandCropByPosNegLabeld``) and augmented (small rotation and scale, contrast gamma, noise). Evaluation runs the
exported network slice by slice with the service's post-processing (:func:`models.cardiac_mri.segment
.segment_images`): Dice per structure, volumes, and EF where both phases of a patient are in the set
(Bland–Altman against the labels' EF).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.cardiac_mri.network import INPUT_NAME, MODEL_NAME, N_CLASSES, OUTPUT_NAME, build_network
from models.cardiac_mri.segment import normalise, segment_images
from training.cardiac_mri.export import CONVENTIONS, INTENDED_USE
from training.framework import plots
from training.framework.config import RunConfig
from training.framework.data import cached_dataset
from training.framework.metrics import agreement, dice
from training.framework.spec import ExportSpec, Metric, Predict, Record, TaskError, TaskSpec, TensorSpec
from training.readers.case import Case

STRUCTURES = {1: "lv", 2: "myo", 3: "rv"}


@dataclass(frozen=True)
class Options:
    """``[options]`` of the cardiac task: network widths, the training crop (pixels, multiples of 16), how many
    crops per slice and draw, the augmentation strengths."""

    channels: tuple[int, ...] = (8, 16, 32, 64)  # the shipped version 1
    num_res_units: int = 1
    patch: tuple[int, int] = (96, 96)
    crops_per_slice: int = 1
    rotate_degrees: float = 15.0
    scale: float = 0.1
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if len(self.patch) != 2 or any(p % 16 or p <= 0 for p in self.patch):
            raise ValueError(f"options.patch {list(self.patch)}: two positive multiples of 16")


def class_of(name: str) -> int | None:
    """Our class (1 LV blood pool, 2 LV myocardium, 3 RV blood pool) of a source label name, None for others."""
    n = name.lower().replace("_", " ").replace("-", " ").strip()
    if not n:
        return None
    if "myo" in n:
        return 2 if "right" not in n and not n.startswith("rv") else None
    if "right" in n or n.split()[0] == "rv":
        return 3
    if "left" in n or n.split()[0] == "lv" or "blood pool" in n:
        return 1
    return None


def _classes(case: Case) -> np.ndarray:
    if case.label is None:
        raise TaskError(f"case {case.case_id}: no label map")
    lut = np.zeros(int(case.label.voxels.max()) + 1, dtype=np.int64)
    for value, name in case.label.names.items():
        cls = class_of(name)
        if cls is not None and value < len(lut):
            lut[value] = cls
    return lut[case.label.voxels]


def usable(case: Case) -> str | None:
    if case.label is None:
        return "no label map (the cardiac task learns from LV, myocardium and RV labels)"
    if case.image.shape[1] < 16 or case.image.shape[2] < 16:
        return f"image {case.image.shape[1]}x{case.image.shape[2]} is smaller than 16x16"
    if not any(class_of(n) for n in case.label.names.values()):
        return f"no LV, myocardium or RV among the labels ({', '.join(sorted(case.label.names.values()))})"
    return None


def samples(cases: Sequence[Case], config: RunConfig, rng: np.random.Generator) -> Any:
    from monai.transforms import (
        Compose,
        DeleteItemsd,
        FgBgToIndicesd,
        RandAdjustContrastd,
        RandAffined,
        RandCropByPosNegLabeld,
        RandGaussianNoised,
        SpatialPadd,
    )

    o: Options = config.options
    items = []
    for case in cases:
        labels = _classes(case)
        images = normalise(case.image.voxels)
        for z in np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1)):
            items.append({"image": images[z][None].astype(np.float32), "label": labels[z][None].astype(np.int64)})
    deterministic = Compose([SpatialPadd(["image", "label"], spatial_size=o.patch),
                             FgBgToIndicesd("label")])  # cached: the crop need not search the labels per draw
    random = Compose([
        RandCropByPosNegLabeld(["image", "label"], label_key="label", spatial_size=o.patch, pos=3, neg=1,
                               num_samples=o.crops_per_slice, fg_indices_key="label_fg_indices",
                               bg_indices_key="label_bg_indices"),
        DeleteItemsd(["label_fg_indices", "label_bg_indices"]),
        RandAffined(["image", "label"], prob=0.7, rotate_range=math.radians(o.rotate_degrees),
                    scale_range=o.scale, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandAdjustContrastd(["image"], prob=0.5, gamma=o.gamma),
        RandGaussianNoised(["image"], prob=0.3, std=o.noise_std),
    ])
    return cached_dataset(items, deterministic, random, config, seed=int(rng.integers(2 ** 31)))


def network(config: RunConfig) -> Any:
    o: Options = config.options
    return build_network(tuple(o.channels), o.num_res_units)


def loss(config: RunConfig) -> Callable[[Any, Mapping[str, Any]], Any]:
    from monai.losses import DiceCELoss

    fn = DiceCELoss(to_onehot_y=True, softmax=True)
    return lambda output, batch: fn(output, batch["label"])


def _patient(case: Case) -> str:
    phase = case.image_labels.phase
    return case.case_id.removesuffix(f"_{phase}") if phase else case.case_id


def evaluate(predict: Predict, cases: Sequence[Case], config: RunConfig) -> list[dict[str, Any]]:
    """Per case: Dice of LV, myocardium, RV (NaN where neither truth nor prediction has it), and the LV/RV
    volumes (ml) of truth and prediction."""
    def run(x: np.ndarray) -> np.ndarray:
        return predict({INPUT_NAME: x})[OUTPUT_NAME]

    records = []
    for case in cases:
        truth = _classes(case)
        pred = segment_images(case.image.voxels, run)
        ml = case.image.voxel_volume_mm3 / 1000.0
        record: dict[str, Any] = {"case_id": case.case_id, "patient": _patient(case),
                                  "phase": case.image_labels.phase}
        for value, name in STRUCTURES.items():
            record[f"dice_{name}"] = dice(pred == value, truth == value)
            record[f"{name}_ml_truth"] = float((truth == value).sum() * ml)
            record[f"{name}_ml_pred"] = float((pred == value).sum() * ml)
        records.append(record)
    return records


def _ef_pairs(records: Sequence[Record]) -> tuple[list[float], list[float]]:
    """(truth EF %, predicted EF %) of the patients with an ED and an ES record."""
    by_patient: dict[str, dict[str, Record]] = {}
    for r in records:
        if r.get("phase") in ("ED", "ES"):
            by_patient.setdefault(str(r["patient"]), {})[str(r["phase"])] = r
    truth: list[float] = []
    pred: list[float] = []
    for phases in by_patient.values():
        if len(phases) == 2:
            ed, es = phases["ED"], phases["ES"]
            for out, key in ((truth, "truth"), (pred, "pred")):
                edv, esv = float(ed[f"lv_ml_{key}"]), float(es[f"lv_ml_{key}"])
                out.append(100.0 * (edv - esv) / edv if edv > 0 else math.nan)
    return truth, pred


def summarise(records: Sequence[Record]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in STRUCTURES.values():
        values = np.array([float(r[f"dice_{name}"]) for r in records], dtype=float)
        values = values[~np.isnan(values)]
        out[f"dice_{name}"] = float(values.mean()) if values.size else math.nan
    present = [out[f"dice_{n}"] for n in STRUCTURES.values() if not math.isnan(out[f"dice_{n}"])]
    out["dice_mean"] = float(np.mean(present)) if present else math.nan
    lv = agreement([float(r["lv_ml_truth"]) for r in records], [float(r["lv_ml_pred"]) for r in records])
    out["lv_volume_mae_ml"] = lv["mae"]
    ef = agreement(*_ef_pairs(records))
    out.update({"ef_bias_points": ef["bias"], "ef_mae_points": ef["mae"]})
    return out


def plot(records: Sequence[Record], folder: Path) -> list[Path]:
    out = [plots.bland_altman([float(r["lv_ml_truth"]) for r in records], [float(r["lv_ml_pred"]) for r in records],
                              folder / "bland_altman_lv_volume.png", "LV volume (ml)")]
    truth, pred = _ef_pairs(records)
    if truth:
        out.append(plots.bland_altman(truth, pred, folder / "bland_altman_ef.png", "EF (%)"))
    return out


def export(config: RunConfig) -> ExportSpec:
    """The shipped ``cardiac_cine_segmenter`` tensors and ``config.pbtxt`` parameters (unchanged)."""
    return ExportSpec(
        model=MODEL_NAME, inputs=(TensorSpec(INPUT_NAME, (1, -1, -1)),),
        outputs=(TensorSpec(OUTPUT_NAME, (N_CLASSES, -1, -1)),), example_shapes=((1, 1, 160, 160),),
        max_batch_size=32,
        parameters={"classes": "background,lv_blood_pool,lv_myocardium,rv_blood_pool",
                    "normalisation": "per image / 99th percentile; pad to a multiple of 16"})


TASK = TaskSpec(
    name="cardiac_mri", model=MODEL_NAME, formats=("dicom-seg", "acdc", "mnms"),
    default_config=Path(__file__).resolve().parents[1] / "framework" / "configs" / "cardiac_mri.toml",
    options=Options, samples=samples, network=network, loss=loss, evaluate=evaluate, summarise=summarise,
    monitor=Metric("dice_mean"), export=export, plots=plot, usable=usable, group=_patient,
    card={"summary": "2D U-Net (MONAI, residual units) segmenting LV blood pool, LV myocardium and RV blood pool on "
                     "each cine image at its native resolution, trained with the training framework.",
          "intended_use": INTENDED_USE, "conventions": CONVENTIONS,
          "limitations": ["Validated only on the held-out cases of the dataset named under trained_on; validate on "
                          "local cines (aiws evaluate --version N) before clinical use.",
                          "EF is computed from the labelled ED and ES frames; the service picks ED/ES itself."]},
)
