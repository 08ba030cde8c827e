"""Export the trained mammography network to ONNX and publish it into ``triton_repo/`` with its card.

Publishing (atomic version folder, ``config.pbtxt`` compatibility, model card markdown + JSON) is
the shared :func:`training.publish.publish_version`. The model card carries the calibration the
pipeline needs (operating probabilities, exam-score decile cut points, CC/MLO link tolerance) under
``operating_point``, and the evaluation figures under ``metrics``.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from models.mammography.density import CUT_POINTS_PERCENT, DESCRIPTIONS
from models.mammography.detection import Calibration
from models.mammography.inference import BREAST_RELATIVE, WINDOW
from models.mammography.network import CHANNELS, INPUT_NAME, OUTPUT_NAME, TILE, export_head
from models.mammography.preprocess import WORKING_SPACING_MM
from training.framework import export as framework_export
from training.framework.spec import ExportSpec, TensorSpec
from training.mammography.config import TrainConfig
from training.publish import publish_version

LOGGER = logging.getLogger(__name__)

MAX_BATCH = 4
MODEL = "mammo_detector"
INTENDED_USE = ("Screening mammography (2D, 'For Presentation' images, four standard views): marks soft-tissue "
                "masses and micro-calcification clusters with region scores 1-100, an exam suspicion score 1-10 and "
                "the BI-RADS density category, as a computer-aided second reader. Not a diagnosis; every mark must "
                "be reviewed by a radiologist.")
LIMITATIONS = [
    "Trained, calibrated and evaluated on synthetic phantoms only (random-field glandular tissue, dome-shaped "
    "round/lobulated and spiculated masses, point calcifications); performance on patient images is unknown "
    "until validated on local data.",
    "Architectural distortion, asymmetries, skin and nipple findings, lymph nodes and implants are not modelled.",
    "Density is an area measure on one projection per view, not a volumetric estimate.",
    "The exam score deciles reflect the phantom calibration population (about half of the exams with a lesion), "
    "not a screening population.",
]

#: the phantom families, as the cards describe them
FAMILY_TEXT = {
    "a": "A (random-field glandular tissue, dome-shaped round/lobulated and spiculated masses, point calcifications)",
    "b": "B (lumpy or power-law parenchyma, other breast shapes, compression and pectoral muscles, skin line and "
         "nipple, vascular and benign calcifications, spiculated and obscured masses, vendor-like display scales)",
}

#: what a network trained on both phantom families (issue 28) adds to its limitations
LIMITATIONS_BOTH_FAMILIES = [
    "Both families were in training, so the card's train family -> evaluation family table shows unseen exams of "
    "each family, not a family the network has never seen (version 1, trained on family A alone, found half the "
    "family-B masses at 5.4 false positives per image).",
    "Marks in breasts without a lesion are false positives at the operating point, mostly on glandular tissue; a "
    "mark must be checked against the image before it is reported.",
]


def limitations(config: TrainConfig) -> list[str]:
    """The card's limitations for a network trained on *config*'s phantom families (version 1's wording for
    family A alone)."""
    if config.families == ("a",):
        return list(LIMITATIONS)
    names = " and ".join(FAMILY_TEXT[f] for f in config.families)
    first = (f"Trained, calibrated and evaluated on synthetic phantoms only, of "
             f"{'two independently built families' if len(config.families) > 1 else 'one family'}: {names}; "
             "performance on patient images is unknown until validated on local data.")
    extra = LIMITATIONS_BOTH_FAMILIES if len(config.families) > 1 else []
    return [first, *LIMITATIONS[1:], *extra]


def export_spec(model: str) -> ExportSpec:
    """The shipped detector's tensors (``mammogram`` [1, 1, TILE, TILE] -> ``logits`` [3, 1, TILE, TILE], logits of
    the export head), dynamic batching and ``config.pbtxt`` parameters, for the framework's one exporter."""
    return ExportSpec(model=model, inputs=(TensorSpec(INPUT_NAME, (1, 1, TILE, TILE)),),
                      outputs=(TensorSpec(OUTPUT_NAME, (len(CHANNELS), 1, TILE, TILE)),),
                      example_shapes=((1, 1, 1, TILE, TILE),), max_batch_size=MAX_BATCH, head=export_head,
                      parameters={"spacing_mm": f"{WORKING_SPACING_MM:g}", "channels": ",".join(CHANNELS),
                                  "normalisation": "VOI window -> [0, 1]"})


def onnx_file(network: Any, path: Path, model: str = MODEL) -> None:
    """Write the export head of *network* as ONNX (logits): input [N, 1, 1, TILE, TILE], output [N, 3, 1, TILE, TILE]."""
    framework_export.onnx_file(network, export_spec(model), path)


def config_text(model: str, instance_count: int = 1) -> str:
    """``config.pbtxt``: ONNX Runtime platform, fixed tiles, dynamic batching, working spacing as a parameter."""
    return framework_export.config_text(export_spec(model), instance_count)


_INPUT_TEXT = {
    WINDOW: "Network input: the image normalised by its display (VOI) window to [0, 1].",
    BREAST_RELATIVE: "Network input (network_input: breast_relative): the image normalised by its display (VOI) "
                     "window, then mapped linearly so that the breast's own air and fatty-tissue levels land at fixed "
                     "values (models.mammography.preprocess.relative_to_breast); display LUT, vendor pixel scale "
                     "and compressed thickness drop out.",
}


def _trained_on(config: TrainConfig) -> dict[str, Any]:
    """What the card says the version learnt from (seed ranges per phantom family, no machine paths)."""
    if config.family == "a" and not config.augment and config.from_version is None:
        return {"phantom_exams": config.train_seeds, "lesion_rate": config.train_lesion_rate}  # as version 1 says
    out: dict[str, Any] = {
        "phantom_families": {family: {"train_seeds": config.seeds("train", family),
                                      "validation_seeds": config.seeds("validation", family),
                                      "calibration_seeds": config.seeds("calibration", family)}
                             for family in config.families},
        "family_a": f"training.mammography.phantom: {FAMILY_TEXT['a']}",
        "family_b": f"training.mammography.phantom_b: {FAMILY_TEXT['b']}",
        "share_of_patches": "equal per family" if config.family == "both" else f"family {config.family} only",
        "lesion_rate": config.train_lesion_rate, "single_sided_share": config.single_sided_share,
        "augmentation": {"sampler": "up-down flip p 0.5, gain +-5 %", **config.augment},
    }
    if config.from_version is not None:
        out["fine_tuned_from"] = f"{config.name} version {config.from_version}"
    return out


def model_card(config: TrainConfig, calibration: Calibration, metrics: dict[str, Any],
               training: dict[str, Any]) -> dict[str, Any]:
    cuts = ", ".join(f"{c:g}" for c in CUT_POINTS_PERCENT)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": "2D U-Net (MONAI) with three logit outputs (fibroglandular tissue, mass, calcification "
                   f"cluster) at {WORKING_SPACING_MM} mm, on 512-pixel tiles with Gaussian blending.",
        "intended_use": INTENDED_USE,
        "trained_on": {**_trained_on(config), **training},
        "metrics": metrics,
        "operating_point": calibration.to_json(),
        "network_input": config.network_input,
        "conventions": [
            _INPUT_TEXT[config.network_input],
            f"BI-RADS 5th-edition density category from the percent dense area (pectoral muscle excluded), "
            f"cut points {cuts} % for a|b|c|d ({'; '.join(f'{k}: {v}' for k, v in DESCRIPTIONS.items())}); "
            "breast = mean of its views, exam = worst side.",
            "Region score 1-100 = 100 x Platt-calibrated probability that the region is a true lesion (fitted per "
            "kind on calibration phantom candidates); a region is marked when its peak logit reaches the kind's "
            "operating logit; exam score 1-10 = decile of the exam's highest calibrated lesion logit among "
            "calibration phantom exams.",
            "CC and MLO marks of one breast are one finding when their distances from the nipple along the nipple "
            f"axis differ by <= {calibration.link_tolerance_mm:g} mm.",
            "Canonical orientation: chest wall at column 0, MLO axilla top left (models/mammography/orientation.py).",
        ],
        "limitations": limitations(config),
        "provenance": {"training_config_sha256": config.hash, "training_config": config.to_json()},
    }


def publish(network: Any, repo_root: Path, config: TrainConfig, card: dict[str, Any], work_dir: Path,
            version: int | None = None) -> int:
    """Export *network* and publish it as the next (or given) version of ``config.name`` with its ``state_dict.pt``
    (so a later run can fine-tune from it, :mod:`training.mammography.warmstart`); returns the version."""
    import torch

    onnx_tmp = work_dir / "model.onnx.tmp"
    state_tmp = work_dir / framework_export.STATE_DICT_NAME
    onnx_file(network, onnx_tmp, config.name)
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, state_tmp)
    try:
        return publish_version(repo_root, config.name, onnx_tmp, config_text(config.name), card, version=version,
                               extra_files={framework_export.STATE_DICT_NAME: state_tmp})
    finally:
        onnx_tmp.unlink(missing_ok=True)
        state_tmp.unlink(missing_ok=True)
