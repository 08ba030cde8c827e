"""The lung-nodule task on the training framework: learns from ``dicom-seg``, ``msd``, ``luna16`` and ``lidc``.

A case is a chest CT. It is put on the network's grid exactly as the service does (axial orientation by
:func:`models.lung_nodules.geometry.reorient_axial`, resampled to ``spacing_mm`` and windowed by
:func:`models.lung_nodules.preprocess.to_network_grid`). Truth: the label map where the source has one (MSD,
DICOM SEG: every labelled voxel is nodule), else a ball of the published diameter at each nodule centre (LUNA16,
LIDC, TID 1500 SR points). Samples are patches cropped around nodules and elsewhere (MONAI
``RandCropByPosNegLabeld``), flipped left-right, rotated in the axial plane and with intensity jitter. Evaluation
runs the exported head (nodule probability) over the whole case with a Gaussian sliding window: Dice of the
thresholded probability, and candidates (connected parts above the threshold, scored by their peak) matched to
the truth nodules for FROC (sensitivity at 1/8 ... 8 false positives per scan, CPM). The operating point is the
lowest score with at most ``max_fp_per_scan`` false positives per validation scan.

The shipped versions 2-6 were made by the phantom loop of :mod:`training.lung_nodules.train` (``make train-lung``),
which stays as it is: its sampler (positives per nodule, hard negatives on vessels and the pleura), its
phantom-seed validation and the second stage (``aiws rescore``) are specific to the phantoms and reproduce those
versions; this task is for learning from datasets.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.lung_nodules.geometry import Grid, reorient_axial, resample
from models.lung_nodules.network import INPUT_NAME, OUTPUT_NAME, NetworkConfig, build_network, probability_head
from models.lung_nodules.preprocess import InputSpec, to_network_grid
from training.framework import plots
from training.framework.config import RunConfig
from training.framework.data import cached_dataset
from training.framework.metrics import dice, froc
from training.framework.spec import ExportSpec, Metric, Predict, Record, TaskSpec, TensorSpec
from training.lung_nodules.export import CONVENTIONS, INTENDED_USE
from training.readers.case import Case

MODEL_NAME = "lung_nodules"


@dataclass(frozen=True)
class Options:
    """``[options]`` of the lung task: the network, training patches, the grid and window the exported model
    declares (``config.pbtxt`` parameters), the sliding-window ROI, and the candidate rule of the evaluation."""

    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    norm: str = "instance"
    patch: tuple[int, int, int] = (48, 48, 48)
    samples_per_case: int = 4
    positive_fraction: float = 0.5
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    roi: tuple[int, int, int] = (96, 96, 96)
    max_batch_size: int = 4
    prob_threshold: float = 0.5
    max_candidates: int = 50
    max_fp_per_scan: float = 0.5
    overlap: float = 0.25

    def __post_init__(self) -> None:
        div = NetworkConfig(tuple(self.channels), tuple(self.strides), self.num_res_units, self.norm).divisor
        for name, size in (("patch", self.patch), ("roi", self.roi)):
            if len(size) != 3 or any(s % div or s <= 0 for s in size):
                raise ValueError(f"options.{name} {list(size)}: three positive multiples of {div}")
        if not 0 <= self.positive_fraction <= 1:
            raise ValueError(f"options.positive_fraction {self.positive_fraction}: between 0 and 1")


@dataclass(frozen=True)
class Prepared:
    """A case on the network grid: windowed image, truth mask, truth nodules (centre index, radius in voxels)."""

    image: np.ndarray
    mask: np.ndarray
    nodules: tuple[tuple[tuple[float, float, float], float], ...]


def _balls(shape: tuple[int, ...], nodules: Sequence[tuple[tuple[float, float, float], float]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for centre, radius in nodules:
        lo = [max(0, int(math.floor(c - radius))) for c in centre]
        hi = [min(s, int(math.ceil(c + radius)) + 1) for c, s in zip(centre, shape, strict=True)]
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            continue
        zz, yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(float)
        inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= max(radius, 1.0) ** 2
        mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= inside
    return mask


def prepare(case: Case, o: Options) -> Prepared:
    """*case* on the network grid (as the service resamples it) with its truth."""
    from scipy import ndimage

    hu, grid = reorient_axial(case.image.voxels, case.image.grid)
    image, target = to_network_grid(hu, grid, InputSpec(o.spacing_mm, o.hu_window))
    to_index = np.linalg.inv(target.affine)
    spacing = float(np.mean(target.spacing))
    nodules = tuple((tuple(float(v) for v in (to_index @ np.array([*n.centre_lps_mm, 1.0]))[:3]),
                     n.diameter_mm / 2 / spacing) for n in case.nodules)
    if case.label is not None:
        label, _ = reorient_axial((case.label.voxels > 0).astype(np.float32), grid)
        mask = resample(label, Grid(label.shape, grid.affine), target) > 0.5
        if not nodules:
            parts, n = ndimage.label(mask)
            found = []
            for k, centre in enumerate(ndimage.center_of_mass(mask, parts, range(1, n + 1)), start=1):
                radius = (3 * int((parts == k).sum()) / (4 * math.pi)) ** (1 / 3)
                found.append((tuple(float(c) for c in centre), radius))
            nodules = tuple(found)  # type: ignore[arg-type]
    else:
        mask = _balls(image.shape, nodules)  # type: ignore[arg-type]
    return Prepared(np.ascontiguousarray(image, dtype=np.float32), mask, nodules)  # type: ignore[arg-type]


def usable(case: Case) -> str | None:
    if case.image.shape[0] < 4:
        return f"{case.image.shape[0]} slice(s): the lung task needs a CT volume"
    return None


def samples(cases: Sequence[Case], config: RunConfig, rng: np.random.Generator) -> Any:
    from monai.transforms import (
        Compose,
        DeleteItemsd,
        FgBgToIndicesd,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
        RandScaleIntensityd,
        SpatialPadd,
    )

    o: Options = config.options
    items = []
    for case in cases:
        p = prepare(case, o)
        items.append({"image": p.image[None], "label": p.mask[None].astype(np.int64)})
    keys = ["image", "label"]
    deterministic = Compose([SpatialPadd(keys, spatial_size=o.patch),
                             FgBgToIndicesd("label")])  # cached: the crop need not search the labels per draw
    random = Compose([
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=o.patch, pos=o.positive_fraction,
                               neg=1 - o.positive_fraction, num_samples=o.samples_per_case,
                               fg_indices_key="label_fg_indices", bg_indices_key="label_bg_indices"),
        DeleteItemsd(["label_fg_indices", "label_bg_indices"]),
        RandFlipd(keys, prob=0.5, spatial_axis=2),
        RandRotate90d(keys, prob=0.5, spatial_axes=(1, 2)),
        RandScaleIntensityd(["image"], factors=0.1, prob=0.5),
        RandGaussianNoised(["image"], prob=0.3, std=0.01),
    ])
    return cached_dataset(items, deterministic, random, config, seed=int(rng.integers(2 ** 31)))


def _net_config(o: Options) -> NetworkConfig:
    return NetworkConfig(tuple(o.channels), tuple(o.strides), o.num_res_units, o.norm)


def network(config: RunConfig) -> Any:
    return build_network(_net_config(config.options))


def loss(config: RunConfig) -> Callable[[Any, Mapping[str, Any]], Any]:
    from monai.losses import DiceCELoss

    fn = DiceCELoss(to_onehot_y=True, softmax=True)
    return lambda output, batch: fn(output, batch["label"])


def probability(predict: Predict, image: np.ndarray, o: Options) -> np.ndarray:
    """Nodule probability of the whole grid *image* (z, y, x) by a Gaussian sliding window of the ROI."""
    import torch
    from monai.inferers import sliding_window_inference

    def net(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(predict({INPUT_NAME: x.numpy()})[OUTPUT_NAME])

    with torch.no_grad():
        out = sliding_window_inference(torch.from_numpy(image[None, None]), tuple(o.roi), o.max_batch_size, net,
                                       overlap=o.overlap, mode="gaussian")
    return np.asarray(out)[0, 0]


def _candidates(prob: np.ndarray, p: Prepared, o: Options) -> tuple[list[float], list[int]]:
    from scipy import ndimage

    parts, n = ndimage.label(prob > o.prob_threshold)
    if n == 0:
        return [], []
    peaks = ndimage.maximum(prob, parts, range(1, n + 1))
    centres = ndimage.center_of_mass(prob, parts, range(1, n + 1))
    order = np.argsort(-np.asarray(peaks))[:o.max_candidates]
    scores, hits = [], []
    for k in order:
        scores.append(float(peaks[k]))
        hit = -1
        for t, (centre, radius) in enumerate(p.nodules):
            if math.dist(centres[k], centre) <= max(radius, 2.0):
                hit = t
                break
        hits.append(hit)
    return scores, hits


def evaluate(predict: Predict, cases: Sequence[Case], config: RunConfig) -> list[dict[str, Any]]:
    """Per case: Dice of the thresholded probability, the candidates' scores and matched truth (FROC)."""
    o: Options = config.options
    records = []
    for case in cases:
        p = prepare(case, o)
        prob = probability(predict, p.image, o)
        scores, hits = _candidates(prob, p, o)
        records.append({"case_id": case.case_id, "dice": dice(prob > o.prob_threshold, p.mask),
                        "n_truth": len(p.nodules), "candidate_scores": scores, "candidate_hits": hits})
    return records


def summarise(records: Sequence[Record]) -> dict[str, float]:
    values = np.array([float(r["dice"]) for r in records], dtype=float)
    values = values[~np.isnan(values)]
    return {"dice": float(values.mean()) if values.size else math.nan, **froc(records)}


def operating_point(records: Sequence[Record], config: RunConfig) -> dict[str, Any]:
    """The lowest candidate score with at most ``max_fp_per_scan`` false positives per validation case, and the
    sensitivity there."""
    o: Options = config.options
    entries = sorted(((s, c, h) for c, r in enumerate(records)
                      for s, h in zip(r["candidate_scores"], r["candidate_hits"], strict=True)), key=lambda e: -e[0])
    allowed = o.max_fp_per_scan * len(records)
    threshold, fps, found = 1.0, 0, set()
    for score, case, hit in entries:
        if hit < 0:
            if fps + 1 > allowed:
                break
            fps += 1
        else:
            found.add((case, hit))
        threshold = score
    n_truth = sum(int(r["n_truth"]) for r in records)
    return {"score_threshold": round(threshold, 4), "max_fp_per_scan": o.max_fp_per_scan,
            "sensitivity": round(len(found) / n_truth, 4) if n_truth else None,
            "false_positives_per_scan": round(fps / max(1, len(records)), 4)}


def plot(records: Sequence[Record], folder: Path) -> list[Path]:
    return [plots.froc_curve(records, folder / "froc.png", "lung nodules: FROC")]


def export(config: RunConfig) -> ExportSpec:
    """The shipped ``lung_nodules`` tensors (``ct`` -> ``nodule_prob``, [1, *roi]) and parameters."""
    o: Options = config.options
    return ExportSpec(
        model=MODEL_NAME, inputs=(TensorSpec(INPUT_NAME, (1, *o.roi)),), outputs=(TensorSpec(OUTPUT_NAME, (1, *o.roi)),),
        example_shapes=((1, 1, *o.roi),), max_batch_size=o.max_batch_size, head=probability_head,
        preferred_batch_sizes=(o.max_batch_size,),
        parameters={"spacing_mm": ",".join(f"{v:g}" for v in o.spacing_mm),
                    "hu_window": ",".join(f"{v:g}" for v in o.hu_window)})


TASK = TaskSpec(
    name="lung_nodules", model=MODEL_NAME, formats=("dicom-seg", "msd", "luna16", "lidc"),
    default_config=Path(__file__).resolve().parents[1] / "framework" / "configs" / "lung_nodules.toml",
    options=Options, samples=samples, network=network, loss=loss, evaluate=evaluate, summarise=summarise,
    monitor=Metric("cpm"), export=export, plots=plot, fit_operating_point=operating_point, usable=usable,
    card={"summary": "3D U-Net (MONAI) nodule segmentation, sliding window on a 1 mm grid, trained with the training "
                     "framework on the dataset named under trained_on.",
          "intended_use": INTENDED_USE, "conventions": CONVENTIONS,
          "limitations": ["Validated only on the held-out cases of the dataset named under trained_on; validate on "
                          "local CT (aiws evaluate --version N) before clinical use.",
                          "No second stage (false-positive reduction) is fitted by the framework; the service applies "
                          "the card's operating point only where a second stage is present."]},
)
