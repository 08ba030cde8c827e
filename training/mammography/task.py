"""The ``mammography`` task on the training framework: the detector (dense tissue, mass, calcification cluster
logits) learnt from CBIS-DDSM, VinDr-Mammo, INbreast or a hospital's images with SEG masks (``dicom-seg``).

Inputs and targets: :mod:`training.mammography.cases` (canonical orientation, working spacing, the service's
normalisation). Training draws fixed-size patches (``[options] patch``) centred on lesions or on random breast
pixels; the loss is binary cross-entropy per channel (the dense channel weighted 0 on images without a density
label) plus Dice on the two lesion channels. The exported graph is the shipped ``mammo_detector``'s:
``mammogram`` (N, 1, 1, tile, tile) -> ``logits`` (N, 3, 1, tile, tile).

Evaluation runs each image as the service does: tiles of the exported model blended with the runtime's Gaussian
weights (:func:`models.runtime.sliding_window.gaussian_weights`), then :func:`models.mammography.analysis.analyse_view`
(segmentation, percent dense area, candidate regions). Per image: density (truth, predicted, agreement, within one
grade), masses and calcification clusters found by a mark (a region whose peak logit reaches the operating logit of
``[options]``) and false-positive marks, the candidates' logits with the truth they hit (FROC, operating point),
and marks on the wrong breast: a mark reported for another breast than the image's label, or whose position in the
stored image lies outside that image's breast (must be 0). :func:`fit_operating_point` fits the calibration the
service reads from the model card (``operating_point``: operating logits for a false-positive rate per image,
Platt scaling, exam-score deciles).
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.mammography.analysis import ViewAnalysis, analyse_view
from models.mammography.density import birads_density
from models.mammography.detection import KINDS, Calibration, Region
from models.mammography.network import CHANNELS, INPUT_NAME, OUTPUT_NAME, NetworkConfig, build_network, export_head
from models.mammography.preprocess import WORKING_SPACING_MM
from models.runtime.sliding_window import gaussian_weights, window_starts
from training.framework.data import cached_dataset
from training.framework.metrics import confusion
from training.framework.plots import confusion_matrix, froc_curve
from training.framework.spec import ExportSpec, Metric, Predict, Record, TaskSpec, TensorSpec
from training.mammography.cases import (
    ASSUMED_SPACING_MM,
    DENSITY_GRADES,
    CaseSkipped,
    MammoView,
    TruthBox,
    crop,
    mammo_view,
    patch_centres,
)
from training.readers.case import Case

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from training.framework.config import RunConfig

LOGGER = logging.getLogger(__name__)

MODEL = "mammo_detector"
#: A region hits a truth box when its centre lies within the box grown by this margin (mm).
HIT_MARGIN_MM = 2.0
_OVERLAP, _SIGMA, _TILE_BATCH = 0.25, 0.125, 4


@dataclass(frozen=True)
class Options:
    """``[options]`` of a mammography run. *patch*: training patch size (pixels at 0.25 mm, a multiple of 16);
    *tile*: the exported model's input size (512 for the shipped model); *operating_logit_mass* / ``_calc``: the
    peak logit from which a region is marked during validation; *target_fp_mass* / ``_calc``: false-positive marks
    per image the fitted operating point allows; *assumed_spacing_mm*: for images without a pixel spacing."""

    channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1
    patch: int = 256
    tile: int = 512
    patches_per_case: int = 16
    lesion_share: float = 0.6
    gain: float = 0.05
    mass_pos_weight: float = 3.0
    operating_logit_mass: float = 0.0
    operating_logit_calc: float = 0.0
    target_fp_mass: float = 0.3
    target_fp_calc: float = 0.2
    assumed_spacing_mm: float = ASSUMED_SPACING_MM

    def __post_init__(self) -> None:
        multiple = int(np.prod(self.strides))
        if self.patch % multiple or self.tile % multiple or self.patch <= 0 or self.tile <= 0:
            raise ValueError(f"patch {self.patch} and tile {self.tile} must be positive multiples of {multiple}")
        if self.patches_per_case < 1 or not 0 <= self.lesion_share <= 1 or self.assumed_spacing_mm <= 0:
            raise ValueError("patches_per_case >= 1, lesion_share in [0, 1] and assumed_spacing_mm > 0")


def _options(config: RunConfig) -> Options:
    return config.options if isinstance(config.options, Options) else Options()


def usable(case: Case) -> str | None:
    """Why the detector cannot learn from *case* (:func:`training.mammography.cases.mammo_view`), or None."""
    try:
        mammo_view(case)
    except CaseSkipped as exc:
        return str(exc)
    return None


def samples(cases: Sequence[Case], config: RunConfig, rng: np.random.Generator) -> Dataset[Any]:
    """``patches_per_case`` patches per case: ``{"image": (1, P, P), "label": (3, P, P), "weight": (3,)}``."""
    from monai.transforms import Compose, EnsureTyped, RandFlipd, RandScaleIntensityd

    opts = _options(config)
    items: list[dict[str, Any]] = []
    for case in cases:
        try:
            view = mammo_view(case, opts.assumed_spacing_mm)
        except CaseSkipped as exc:
            LOGGER.info("case %s left out: %s", case.case_id, exc)
            continue
        background = float(view.x.min())
        for centre in patch_centres(view, opts.patches_per_case, opts.patch, rng, opts.lesion_share):
            items.append({"image": crop(view.x[None], centre, opts.patch, background),
                          "label": crop(view.target, centre, opts.patch, 0.0), "weight": view.weight.copy()})
    LOGGER.info("mammography samples: %d patches of %d px from %d cases", len(items), opts.patch, len(cases))
    deterministic = EnsureTyped(keys=("image", "label", "weight"), track_meta=False)
    random = Compose([RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=0),
                      RandScaleIntensityd(keys="image", factors=opts.gain, prob=1.0)])
    return cached_dataset(items, deterministic, random, config, seed=int(rng.integers(2**31)))


def network(config: RunConfig) -> torch.nn.Module:
    opts = _options(config)
    return build_network(NetworkConfig(tuple(opts.channels), tuple(opts.strides), opts.num_res_units))  # type: ignore[no-any-return]


def loss(config: RunConfig) -> Any:
    """Per-channel weighted BCE (positive weight 1 dense, ``mass_pos_weight`` lesions) + Dice on the lesion channels."""
    import torch
    from monai.losses import DiceLoss

    opts = _options(config)
    dice = DiceLoss(sigmoid=True, batch=True)
    pos = torch.tensor([1.0, opts.mass_pos_weight, opts.mass_pos_weight]).view(1, 3, 1, 1)

    def fn(output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        target = batch["label"].to(output.dtype)
        weight = batch["weight"].to(output.dtype).view(-1, 3, 1, 1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(output, target, reduction="none",
                                                                   pos_weight=pos.to(output.device))
        per_pixel = (bce * weight).sum() / (weight.expand_as(bce).sum().clamp(min=1.0))
        return per_pixel + dice(output[:, 1:], target[:, 1:])

    return fn


def export(config: RunConfig) -> ExportSpec:
    """The shipped detector's tensors, tile and ``config.pbtxt`` parameters."""
    tile = _options(config).tile
    return ExportSpec(model=MODEL, inputs=(TensorSpec(INPUT_NAME, (1, 1, tile, tile)),),
                      outputs=(TensorSpec(OUTPUT_NAME, (len(CHANNELS), 1, tile, tile)),),
                      example_shapes=((1, 1, 1, tile, tile),), max_batch_size=4, head=export_head,
                      parameters={"channels": ",".join(CHANNELS), "normalisation": "VOI window -> [0, 1]",
                                  "spacing_mm": f"{WORKING_SPACING_MM:g}"})


def tiled(predict: Predict, tile: int) -> Any:
    """A (1, 1, H, W) -> (1, 3, H, W) callable running the exported model tile by tile, as the service's sliding
    window does (overlap 0.25, Gaussian blending, padding with the image's minimum)."""
    weights = gaussian_weights((tile, tile), _SIGMA)

    def run(x: np.ndarray) -> np.ndarray:
        image = x[0, 0]
        rows, cols = image.shape
        shape = (max(rows, tile), max(cols, tile))
        padded = np.pad(image, ((0, shape[0] - rows), (0, shape[1] - cols)), constant_values=float(image.min()))
        out = np.zeros((len(CHANNELS), *shape), dtype=np.float32)
        wsum = np.zeros(shape, dtype=np.float32)
        starts = list(itertools.product(window_starts(shape[0], tile, _OVERLAP), window_starts(shape[1], tile, _OVERLAP)))
        for i in range(0, len(starts), _TILE_BATCH):
            chunk = starts[i:i + _TILE_BATCH]
            batch = np.stack([padded[None, None, r:r + tile, c:c + tile] for r, c in chunk]).astype(np.float32)
            result = np.asarray(predict({INPUT_NAME: batch})[OUTPUT_NAME], dtype=np.float32)
            for pred, (r, c) in zip(result, chunk):
                out[:, r:r + tile, c:c + tile] += pred[:, 0] * weights
                wsum[r:r + tile, c:c + tile] += weights
        return (out / wsum)[None, :, :rows, :cols]

    return run


def _hit(region: Region, truths: Sequence[tuple[int, TruthBox]]) -> int:
    """Index of the first truth of the region's kind whose box (grown by :data:`HIT_MARGIN_MM`) holds its centre."""
    margin = HIT_MARGIN_MM / WORKING_SPACING_MM
    r, c = region.centre_rc
    for index, truth in truths:
        r0, c0, r1, c1 = truth.box
        if r0 - margin <= r <= r1 + margin and c0 - margin <= c <= c1 + margin:
            return index
    return -1


def _wrong_breast(view: MammoView, analysis: ViewAnalysis, marks: Sequence[Region]) -> int:
    """Marks reported for another breast, or lying outside the image's breast once mapped back to the stored image."""
    if analysis.laterality != view.laterality:
        return len(marks)
    stored_breast = view.orientation.to_stored(view.segmentation.breast)
    wrong = 0
    for region in marks:
        r, c = view.orientation.point_to_stored(*region.centre_rc, stored_breast.shape)  # type: ignore[arg-type]
        ri, ci = min(int(r), stored_breast.shape[0] - 1), min(int(c), stored_breast.shape[1] - 1)
        wrong += 0 if stored_breast[ri, ci] else 1
    return wrong


def view_record(view: MammoView, analysis: ViewAnalysis, operating: Mapping[str, float]) -> dict[str, Any]:
    """One image's evaluation values (see the module docstring)."""
    grade = birads_density(analysis.percent_dense)
    record: dict[str, Any] = {"case_id": view.case_id, "laterality": view.laterality, "view": view.view,
                              "percent_dense": analysis.percent_dense, "density_true": view.density,
                              "density_pred": grade, "peak_logits": dict(analysis.peak_logits)}
    if view.density:
        gap = abs(DENSITY_GRADES.index(grade) - DENSITY_GRADES.index(view.density))
        record["density_agree"], record["density_within_one"] = float(gap == 0), float(gap <= 1)
    else:
        record["density_agree"] = record["density_within_one"] = math.nan
    all_marks = []
    for kind, key in (("mass", "mass"), ("calcification_cluster", "calc")):
        truths = [(i, t) for i, t in enumerate(b for b in view.boxes if b.kind == kind)]
        regions = [r for r in analysis.candidates if r.kind == kind]
        hits = [_hit(r, truths) for r in regions]
        marks = [(r, h) for r, h in zip(regions, hits) if r.logit >= operating[kind]]
        all_marks += [r for r, _ in marks]
        record[f"{key}_truth"] = len(truths)
        record[f"{key}_found"] = len({h for _, h in marks if h >= 0})
        record[f"{key}_fp"] = sum(1 for _, h in marks if h < 0)
        record[f"{key}_candidates"] = [[float(r.logit), int(h)] for r, h in zip(regions, hits)]
        if kind == "mass":  # the framework's FROC keys
            record["candidate_scores"] = [float(r.logit) for r in regions]
            record["candidate_hits"], record["n_truth"] = hits, len(truths)
    record["wrong_breast_marks"] = _wrong_breast(view, analysis, all_marks)
    return record


def evaluate(predict: Predict, cases: Sequence[Case], config: RunConfig) -> list[dict[str, Any]]:
    """One record per image the service would analyse (see :func:`view_record`)."""
    opts = _options(config)
    operating = {"mass": opts.operating_logit_mass, "calcification_cluster": opts.operating_logit_calc}
    run = tiled(predict, opts.tile)
    records = []
    for case in cases:
        try:
            view = mammo_view(case, opts.assumed_spacing_mm)
        except CaseSkipped as exc:
            LOGGER.info("case %s not evaluated: %s", case.case_id, exc)
            continue
        analysis = analyse_view(view.image, view.laterality, view.view, view.window, run)
        records.append(view_record(view, analysis, operating))
    return records


def _ratio(records: Sequence[Record], found: str, total: str) -> float:
    n = sum(int(r[total]) for r in records)
    return sum(int(r[found]) for r in records) / n if n else math.nan


def _mean(records: Sequence[Record], key: str) -> float:
    values = [float(r[key]) for r in records if not math.isnan(float(r[key]))]
    return float(np.mean(values)) if values else math.nan


def summarise(records: Sequence[Record]) -> dict[str, float]:
    """Pooled statistics over *records*; ``quality`` (monitored) is the mean of density agreement and mass
    sensitivity, less 0.1 per false-positive mass mark per image."""
    if not records:
        return {}
    out = {"density_agreement": _mean(records, "density_agree"),
           "density_within_one": _mean(records, "density_within_one"),
           "mass_sensitivity": _ratio(records, "mass_found", "mass_truth"),
           "mass_fp_per_image": float(np.mean([r["mass_fp"] for r in records])),
           "calc_sensitivity": _ratio(records, "calc_found", "calc_truth"),
           "calc_fp_per_image": float(np.mean([r["calc_fp"] for r in records])),
           "wrong_breast_marks": float(sum(r["wrong_breast_marks"] for r in records))}
    parts = [v for v in (out["density_agreement"], out["mass_sensitivity"]) if not math.isnan(v)]
    out["quality"] = float(np.mean(parts)) - 0.1 * out["mass_fp_per_image"] if parts else math.nan
    return out


def _threshold(logits: Sequence[tuple[float, int]], images: int, fp_per_image: float) -> float:
    """Lowest logit whose false-positive marks per image stay <= *fp_per_image*."""
    from models.mammography.detection import MIN_LOGIT

    ordered = np.sort([lg for lg, h in logits if h < 0])[::-1]
    allowed = int(np.floor(fp_per_image * images))
    return MIN_LOGIT if len(ordered) <= allowed else float(np.nextafter(ordered[allowed], np.inf))


def fit_operating_point(records: Sequence[Record], config: RunConfig) -> dict[str, Any]:
    """The calibration the service reads from the card (:class:`models.mammography.detection.Calibration`)."""
    from training.mammography.evaluate import fit_platt

    opts = _options(config)
    targets = {"mass": opts.target_fp_mass, "calcification_cluster": opts.target_fp_calc}
    pooled = {kind: [(float(lg), int(h)) for r in records for lg, h in r[f"{key}_candidates"]]
              for kind, key in (("mass", "mass"), ("calcification_cluster", "calc"))}
    operating = {k: _threshold(pooled[k], len(records), targets[k]) for k in KINDS}
    platt = {k: fit_platt([lg for lg, _ in pooled[k]], [h >= 0 for _, h in pooled[k]]) for k in KINDS}
    provisional = Calibration(operating, platt, tuple(range(9)))
    raw = [provisional.exam_raw(r["peak_logits"]) for r in records] or [0.0]
    cuts = np.maximum.accumulate(np.quantile(np.asarray(raw, dtype=np.float64), np.arange(1, 10) / 10.0))
    fitted = {"images": len(records), "target_fp_per_image": targets}
    return Calibration(operating, platt, tuple(float(v) for v in cuts), fitted_on=fitted).to_json()


def plots(records: Sequence[Record], folder: Path) -> list[Path]:
    """Density confusion matrix (images with a density label) and the mass FROC."""
    if not records:
        return []
    rated = [r for r in records if r["density_true"]]
    matrix = confusion([r["density_true"] for r in rated], [r["density_pred"] for r in rated], DENSITY_GRADES)
    return [confusion_matrix(matrix, [g.upper() for g in DENSITY_GRADES], folder / "density_confusion.png",
                             "BI-RADS density"),
            froc_curve(records, folder / "mass_froc.png", "masses")]


CARD = {
    "summary": "Mammography detector: per-pixel logits of fibroglandular tissue, mass and calcification cluster on "
               "the canonical 0.25 mm image; density is the percent dense area mapped to BI-RADS a-d.",
    "intended_use": "Screening mammography (2D For Presentation CC/MLO images); computer-aided marks and density, "
                    "to be reviewed by a reader.",
    "limitations": ["Public datasets give no dense-tissue masks: the dense channel learns the brightest share of "
                    "the breast tissue matching the labelled density category (training.mammography.cases).",
                    "Validate on the hospital's own images (aiws evaluate --version N) before use."],
    "conventions": "Inputs as models.mammography (canonical orientation, 0.25 mm, display window -> [0, 1]).",
}

TASK = TaskSpec(
    name="mammography", model=MODEL, formats=("dicom-seg", "cbis-ddsm", "vindr-mammo", "inbreast"),
    default_config=Path(__file__).resolve().parent / "configs" / "framework.toml", options=Options,
    samples=samples, network=network, loss=loss, evaluate=evaluate, monitor=Metric("quality"), export=export,
    summarise=summarise, plots=plots, fit_operating_point=fit_operating_point, usable=usable, card=CARD,
)
