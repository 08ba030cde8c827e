"""The ``coronary_ct`` task on the training framework: the calcium lesion labeller learnt from a hospital's studies
(``dicom-seg``: SEG segments named by vessel, TID 1500 SR calcified lesions per vessel) or from orCaScore.

Samples are the service's own candidates and patches (:mod:`training.coronary_ct.cases`); the network, the tensors
and ``config.pbtxt`` are those of the shipped ``coronary_calcium_labeller``. A case is evaluated as the service
scores it: logits -> :func:`models.coronary_ct.labelling.vote_by_plaque` -> skeletal structures never scored ->
:func:`models.coronary_ct.calcium.score`, against the same candidates scored with their truth classes.

Per case (record): total and per-vessel Agatston (truth, predicted), lesions per vessel and how many got their
vessel, the CAC-DRS category (truth, predicted), the not-coronary candidates (valve, annulus, aortic wall, bone)
and how many of them were counted as coronary. Summary: Agatston mean absolute error (total, per vessel), lesion
recall per vessel and pooled, CAC-DRS agreement (grade A0-A3, and grade with vessel count), not-coronary
candidates counted per case, and the balanced accuracy over the five classes (the monitored metric).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.coronary_ct.calcium import VESSEL_ORDER, Vessel, score
from models.coronary_ct.labelling import skeletal_structures, vote_by_plaque
from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME, build_network
from models.coronary_ct.patches import COARSE_STEP_MM, FINE_STEP_MM, PATCH_SHAPE
from training.coronary_ct.cases import TOLERANCE_MM, CaseSkipped, CoronaryCase, coronary_case
from training.framework.data import cached_dataset
from training.framework.metrics import confusion
from training.framework.plots import bland_altman, confusion_matrix
from training.framework.spec import ExportSpec, Metric, Predict, Record, TaskSpec, TensorSpec
from training.readers.case import Case

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from training.framework.config import RunConfig

LOGGER = logging.getLogger(__name__)

#: Record keys of the four coronaries (Vessel.LCX's value is "LCx").
VESSEL_KEYS = {Vessel.LM: "LM", Vessel.LAD: "LAD", Vessel.LCX: "LCX", Vessel.RCA: "RCA"}
CAC_GRADES = ("A0", "A1", "A2", "A3")
_EVAL_BATCH = 256


@dataclass(frozen=True)
class Options:
    """``[options]`` of a coronary_ct run. *tolerance_mm*: labelled lesion centre to plaque centroid for a match;
    *not_coronary_per_case*: at most this many not-coronary candidates of a case are training samples (bone gives
    hundreds; 0: all); *noise*: SD of the Gaussian noise added to the HU channels of a training patch."""

    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.1
    tolerance_mm: float = TOLERANCE_MM
    not_coronary_per_case: int = 60
    noise: float = 0.02

    def __post_init__(self) -> None:
        if not self.channels or self.tolerance_mm <= 0 or self.not_coronary_per_case < 0 or self.noise < 0:
            raise ValueError("channels must be given, tolerance_mm > 0, not_coronary_per_case and noise >= 0")


def _options(config: RunConfig) -> Options:
    return config.options if isinstance(config.options, Options) else Options()


def usable(case: Case) -> str | None:
    """Why the labeller cannot learn from *case* (see :func:`training.coronary_ct.cases.coronary_case`), or None."""
    try:
        coronary_case(case, with_patches=False)
    except CaseSkipped as exc:
        return str(exc)
    return None


def _noise_transform(std: float) -> Any:
    """MONAI random transform: Gaussian noise on the two HU channels of ``image`` (not on the lesion mask)."""
    import torch
    from monai.transforms import MapTransform, RandomizableTransform

    class RandHuNoised(MapTransform, RandomizableTransform):  # type: ignore[misc]
        def __init__(self) -> None:
            MapTransform.__init__(self, keys=("image",))
            RandomizableTransform.__init__(self, prob=1.0)

        def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
            out = dict(data)
            image = torch.as_tensor(out["image"])
            noise = torch.from_numpy(self.R.normal(0.0, std, image.shape).astype(np.float32))
            noise[1] = 0.0
            out["image"] = image + noise
            return out

    return RandHuNoised()


def samples(cases: Sequence[Case], config: RunConfig, rng: np.random.Generator) -> Dataset[Any]:
    """Every coronary candidate of each case and up to ``not_coronary_per_case`` of its others, as
    ``{"image": (3, 7, 24, 24) float32, "label": class index}``."""
    from monai.transforms import EnsureTyped

    opts = _options(config)
    items: list[dict[str, Any]] = []
    counts = np.zeros(len(VESSEL_ORDER), dtype=int)
    for case in cases:
        try:
            prepared = coronary_case(case, opts.tolerance_mm)
        except CaseSkipped as exc:
            LOGGER.info("case %s left out: %s", case.case_id, exc)
            continue
        x, y = prepared.samples()
        others = np.nonzero(y == Vessel.NONE.index)[0]
        if opts.not_coronary_per_case and len(others) > opts.not_coronary_per_case:
            others = rng.choice(others, size=opts.not_coronary_per_case, replace=False)
        keep = np.sort(np.concatenate([np.nonzero(y != Vessel.NONE.index)[0], others]))
        items += [{"image": x[i], "label": np.int64(y[i])} for i in keep]
        counts += np.bincount(y[keep], minlength=len(VESSEL_ORDER))
    LOGGER.info("coronary samples: %d patches from %d cases, classes %s", len(items), len(cases), counts.tolist())
    deterministic = EnsureTyped(keys=("image", "label"), track_meta=False)
    random = _noise_transform(opts.noise) if opts.noise > 0 else None
    return cached_dataset(items, deterministic, random, config, seed=int(rng.integers(2**31)))


def network(config: RunConfig) -> torch.nn.Module:
    opts = _options(config)
    return build_network(tuple(opts.channels), opts.dropout)  # type: ignore[no-any-return]


def loss(config: RunConfig) -> Any:
    import torch

    def fn(output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, batch["label"].long().reshape(-1))

    return fn


def export(config: RunConfig) -> ExportSpec:
    """The shipped labeller's tensors and ``config.pbtxt`` parameters."""
    return ExportSpec(model=MODEL_NAME, inputs=(TensorSpec(INPUT_NAME, PATCH_SHAPE),),
                      outputs=(TensorSpec(OUTPUT_NAME, (len(VESSEL_ORDER),)),),
                      example_shapes=((2, *PATCH_SHAPE),), max_batch_size=512,
                      parameters={"classes": ",".join(v.value for v in VESSEL_ORDER),
                                  "coarse_step_mm": ",".join(f"{v:g}" for v in COARSE_STEP_MM),
                                  "fine_step_mm": ",".join(f"{v:g}" for v in FINE_STEP_MM)})


def predicted_labels(prepared: CoronaryCase, predict: Predict) -> list[Vessel]:
    """The service's labels of the case's candidates: logits pooled per plaque, skeletal structures not scored."""
    chunks = [np.asarray(predict({INPUT_NAME: prepared.patches[i:i + _EVAL_BATCH].astype(np.float32)})[OUTPUT_NAME],
                         dtype=np.float64) for i in range(0, len(prepared.lesions), _EVAL_BATCH)]
    logits = np.concatenate(chunks) if chunks else np.zeros((0, len(VESSEL_ORDER)))
    voted = vote_by_plaque(prepared.lesions, logits, prepared.shape)
    bone = skeletal_structures(prepared.lesions, prepared.geometry, prepared.shape)
    return [Vessel.NONE if b else v for v, b in zip(voted, bone)]


def case_record(prepared: CoronaryCase, labels: Sequence[Vessel]) -> dict[str, Any]:
    """One case's evaluation values (see the module docstring); unusable candidates are scored by neither side."""
    usable_mask = prepared.truth >= 0
    truth = [VESSEL_ORDER[int(t)] if ok else Vessel.NONE for t, ok in zip(prepared.truth, usable_mask)]
    ours = [lab if ok else Vessel.NONE for lab, ok in zip(labels, usable_mask)]
    ref_score, our_score = score(prepared.lesions, truth, prepared.geometry), score(prepared.lesions, ours,
                                                                                  prepared.geometry)
    record: dict[str, Any] = {
        "case_id": prepared.case_id, "candidates": len(prepared.lesions),
        "labelled_lesions": prepared.labelled, "matched_lesions": prepared.matched,
        "agatston_true": ref_score.total.agatston, "agatston_pred": our_score.total.agatston,
        "cac_drs_true": ref_score.cac_drs, "cac_drs_pred": our_score.cac_drs,
    }
    for vessel, key in VESSEL_KEYS.items():
        record[f"agatston_{key}_true"] = ref_score.vessels[vessel].agatston
        record[f"agatston_{key}_pred"] = our_score.vessels[vessel].agatston
        record[f"lesions_{key}"] = sum(1 for t in truth if t is vessel)
        record[f"recalled_{key}"] = sum(1 for t, p in zip(truth, ours) if t is vessel and p is vessel)
    for k, vessel in enumerate(VESSEL_ORDER):
        record[f"class_{k}_n"] = sum(1 for t, ok in zip(truth, usable_mask) if ok and t is vessel)
        record[f"class_{k}_correct"] = sum(1 for t, p, ok in zip(truth, ours, usable_mask)
                                           if ok and t is vessel and p is vessel)
    not_coronary = [(t, p) for t, p, ok in zip(truth, ours, usable_mask) if ok and t is Vessel.NONE]
    record["not_coronary"] = len(not_coronary)
    record["not_coronary_counted"] = sum(1 for _, p in not_coronary if p is not Vessel.NONE)
    return record


def evaluate(predict: Predict, cases: Sequence[Case], config: RunConfig) -> list[dict[str, Any]]:
    """One record per case that the labeller can be checked on (cases whose labels match nothing are left out)."""
    opts = _options(config)
    records = []
    for case in cases:
        try:
            prepared = coronary_case(case, opts.tolerance_mm)
        except CaseSkipped as exc:
            LOGGER.info("case %s not evaluated: %s", case.case_id, exc)
            continue
        records.append(case_record(prepared, predicted_labels(prepared, predict)))
    return records


def _ratio(records: Sequence[Record], hit: str, total: str) -> float:
    n = sum(int(r[total]) for r in records)
    return sum(int(r[hit]) for r in records) / n if n else math.nan


def summarise(records: Sequence[Record]) -> dict[str, float]:
    """Pooled statistics over *records* (any multiset: the framework bootstraps it)."""
    if not records:
        return {}
    out: dict[str, float] = {
        "agatston_mae": float(np.mean([abs(r["agatston_pred"] - r["agatston_true"]) for r in records])),
        "cac_drs_agreement": float(np.mean([r["cac_drs_pred"][:2] == r["cac_drs_true"][:2] for r in records])),
        "cac_drs_n_agreement": float(np.mean([r["cac_drs_pred"] == r["cac_drs_true"] for r in records])),
        "not_coronary_counted_per_case": float(np.mean([r["not_coronary_counted"] for r in records])),
        "not_coronary_rejected": 1.0 - _ratio(records, "not_coronary_counted", "not_coronary"),
    }
    for key in VESSEL_KEYS.values():
        out[f"agatston_mae_{key}"] = float(np.mean([abs(r[f"agatston_{key}_pred"] - r[f"agatston_{key}_true"])
                                                    for r in records]))
        out[f"lesion_recall_{key}"] = _ratio(records, f"recalled_{key}", f"lesions_{key}")
    hits = sum(int(r[f"recalled_{k}"]) for r in records for k in VESSEL_KEYS.values())
    total = sum(int(r[f"lesions_{k}"]) for r in records for k in VESSEL_KEYS.values())
    out["lesion_recall"] = hits / total if total else math.nan
    recalls = [_ratio(records, f"class_{k}_correct", f"class_{k}_n") for k in range(len(VESSEL_ORDER))]
    present = [v for v in recalls if not math.isnan(v)]
    out["balanced_accuracy"] = float(np.mean(present)) if present else math.nan
    return out


def plots(records: Sequence[Record], folder: Path) -> list[Path]:
    """Bland–Altman of the total Agatston score and the CAC-DRS grade confusion matrix."""
    if not records:
        return []
    truth = [float(r["agatston_true"]) for r in records]
    predicted = [float(r["agatston_pred"]) for r in records]
    matrix = confusion([r["cac_drs_true"][:2] for r in records], [r["cac_drs_pred"][:2] for r in records], CAC_GRADES)
    return [bland_altman(truth, predicted, folder / "agatston_bland_altman.png", "Agatston"),
            confusion_matrix(matrix, CAC_GRADES, folder / "cac_drs_confusion.png", "CAC-DRS grade")]


def encoder(name: str) -> bool:
    """The convolutional encoder of the MONAI Classifier (everything but the final linear head)."""
    return not name.startswith("final.")


CARD = {
    "summary": "Coronary calcium lesion labeller: each candidate 2D lesion (>= 130 HU, >= 1 mm2) of a gated "
               "non-contrast CT -> not coronary, LM, LAD, LCx or RCA; Agatston scoring follows.",
    "intended_use": "Vessel assignment of calcium candidates for Agatston scoring and CAC-DRS of ECG-gated "
                    "non-contrast cardiac CT at 120 kVp; computer-aided, to be reviewed by a reader.",
    "limitations": ["Trained on the dataset named in this card; a hospital validates it on its own studies "
                    "(aiws evaluate --version N) before use.",
                    "orCaScore labels left main calcium as LAD: a model trained on it alone does not learn LM."],
    "conventions": "Candidates and patches as models.coronary_ct (patches.py); truth: label map majority, else the "
                   "labelled lesion centre within tolerance of a plaque centroid, else not coronary.",
}

TASK = TaskSpec(
    name="coronary_ct", model=MODEL_NAME, formats=("dicom-seg", "orcascore"),
    default_config=Path(__file__).resolve().parent / "configs" / "framework.toml", options=Options,
    samples=samples, network=network, loss=loss, evaluate=evaluate, monitor=Metric("balanced_accuracy"),
    export=export, summarise=summarise, plots=plots, encoder=encoder, usable=usable, card=CARD,
)
