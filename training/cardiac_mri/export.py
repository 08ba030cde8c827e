"""Export the cine segmentation U-Net to ONNX with its ``config.pbtxt`` and model card.

Same pattern as the other tasks (see :mod:`training.coronary_ct.export`): a candidate in
``RUN/export/<model>/1/`` written with the shared :func:`training.publish.publish_version`,
evaluated by ``aiws evaluate`` and published by ``aiws export``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from models.cardiac_mri.network import INPUT_NAME, MODEL_NAME, N_CLASSES, OUTPUT_NAME
from training.candidate import OnnxSignature
from training.framework import export as framework_export
from training.framework.spec import ExportSpec, TensorSpec

MAX_BATCH = 32

SIGNATURE = OnnxSignature(MODEL_NAME, INPUT_NAME, OUTPUT_NAME, (1, 1, 160, 160), {0: "batch", 2: "height", 3: "width"}, {0: "batch", 2: "height", 3: "width"})

INTENDED_USE = ("Left- and right-ventricular volumes, ejection fraction and LV mass from a short-axis cine MR "
                "(bSSFP) by the method of discs: the network labels LV blood pool, LV myocardium and RV blood pool "
                "on every slice and phase; volumes follow exactly from the labels. A computer-aided result to be "
                "reviewed; not a diagnosis.")
LIMITATIONS = [
    "Trained and evaluated on synthetic phantoms only (ellipsoidal LV, crescent RV, circular papillary muscles, "
    "smooth bias field and Rician noise); performance on patient cines is unknown until validated on local data.",
    "No through-plane partial volume at the base, no trabeculations, no flow or banding artefacts, no "
    "congenital anatomy; the LV outflow tract is not modelled.",
    "The RV is measured on the short-axis stack (no atrial-ventricular valve plane tracking).",
]
#: The limitations of a version trained on both phantom families (issue 28).
LIMITATIONS_FAMILIES = [
    "Trained and evaluated on synthetic phantoms only: family A (ellipsoidal LV, crescent RV, two papillary "
    "muscles, smooth bias field) and family B (bullet-shaped LV, trabeculation, two or three papillary muscles, "
    "coil bias fields, 6-16 slices with 0-5 mm gaps, partial base or apex coverage, breathing shifts between "
    "slices); performance on patient cines is unknown until validated on local data.",
    "At end-systole, a basal slice that has become atrium is still labelled LV in some family-B cines (3 of 16 "
    "unseen cines: ESV 18-39 % high, EF 5-20 points low): check the basal slices at end-systole.",
    "The RV pool is drawn narrower at the septum than family A's convention (family B leaves a 2 mm RV-side septal "
    "wall outside the pool): on unseen family-A cines RV volumes are about 10 % low (version 1: 4 %).",
    "No through-plane partial volume at the base, no flow or banding artefacts, no congenital anatomy; the LV "
    "outflow tract is not modelled; the RV is measured on the short-axis stack (no valve plane tracking).",
]
#: The limitations of a version trained on both families with basal sampling (``basal_fraction``; version 3).
LIMITATIONS_BASAL = [
    LIMITATIONS_FAMILIES[0],
    "Basal slices: half of the family-B training samples were drawn at or above the LV base, where version 2 read "
    "an atrial slice at end-systole as LV. The recipe was chosen on seeds 10000-10015 and 10100-10131; on 32 "
    "family-B cines evaluated once, after that (seeds 10200-10231), EF is within 3 points "
    "in 32 and EDV and ESV within 10 % in 31; the other is a small heart (EDV 47 ml; EDV 13 % and ESV 19 % high). "
    "LV mass on family B: mean absolute error 15 % (family A 3 %). Check the basal slices at end-systole.",
    "RV volumes: mean absolute error of EDV / ESV 3.6 / 5.6 % on unseen family-A cines, 12.1 / 8.5 % on family B "
    "(family B leaves a 2 mm RV-side septal wall outside the pool).",
    LIMITATIONS_FAMILIES[3],
]
CONVENTIONS = [
    "Volume = sum of areas x (slice thickness + gap).",
    "Papillary muscles and trabeculations counted in the blood pool, not in the mass.",
    "Basal slice: LV blood pool counts only where at least half of the 2-pixel ring around it is LV "
    "myocardium, else the slice is atrial (LV labels -> background); LV myocardium beyond the basal end of the "
    "pool is background, beyond the apical end it is the apical cap (kept). The base moves with the phase.",
    "Post-processing per image: largest connected part of each pool, the myocardium parts touching the LV pool; "
    "holes in the LV pool are pool.",
    "ED/ES = largest/smallest LV volume; RV uses its own largest/smallest.",
    "LV mass = myocardial volume at ED x 1.05 g/ml. BSA Mosteller. Reference ranges Kawel-Boehm 2015, "
    "mean +/- 2 SD by sex.",
]


def export_spec() -> ExportSpec:
    """The segmenter's tensors (dynamic image size, multiples of 16), dynamic batching and ``config.pbtxt``
    parameters, for the framework's one exporter (ONNX through :data:`SIGNATURE`'s axes)."""
    return ExportSpec(model=MODEL_NAME, inputs=(TensorSpec(INPUT_NAME, (1, -1, -1)),),
                      outputs=(TensorSpec(OUTPUT_NAME, (N_CLASSES, -1, -1)),),
                      example_shapes=(SIGNATURE.example_shape,), max_batch_size=MAX_BATCH,
                      parameters={"classes": "background,lv_blood_pool,lv_myocardium,rv_blood_pool",
                                  "normalisation": "per image / 99th percentile; pad to a multiple of 16"})


def config_text(instance_count: int = 1) -> str:
    """``config.pbtxt``: ONNX Runtime platform, dynamic image size (multiples of 16), dynamic batching."""
    return framework_export.config_text(export_spec(), instance_count)


GENERATORS = {"A": "training/cardiac_mri/phantom.py", "B": "training/cardiac_mri/phantom_b.py"}
AUGMENTATION = ("MONAI: rotation +-25 degrees and scale +-15 % (pixel spacing), elastic deformation, polynomial bias "
                "field, contrast gamma 0.7-1.4, intensity scale, Gaussian blur, Rician noise")


def _generators(families: list[str]) -> dict[str, Any]:
    """Version 1's card named one generator; a card trained on several families names each."""
    if list(families) == ["A"]:
        return {"generator": GENERATORS["A"]}
    return {"families": list(families), "generators": {f: GENERATORS[f] for f in families}}


def limitations(config_json: dict[str, Any]) -> list[str]:
    """The card's limitations for a run of this training configuration (its families, basal sampling)."""
    families = list(config_json.get("families", ["A"]))
    if families == ["A"]:
        return LIMITATIONS
    if families == ["B"]:  # the other direction of the cross-family table (configs/b_only.json); not shipped
        return ["Trained on synthetic phantoms of family B only (bullet-shaped LV, trabeculation, coil bias fields, "
                "gaps, partial coverage, breathing shifts); family A and patient cines are other worlds: see the "
                "card's train family -> evaluation family table.", LIMITATIONS_FAMILIES[3]]
    return LIMITATIONS_BASAL if config_json.get("basal_fraction") else LIMITATIONS_FAMILIES


def candidate_card(config_json: dict[str, Any], config_hash: str, validation: dict[str, Any]) -> dict[str, Any]:
    """The model card of a freshly trained segmenter (``aiws evaluate`` adds the evaluation figures)."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": "2D U-Net (MONAI, residual units) segmenting LV blood pool, LV myocardium and RV blood pool on "
                   "each cine image at its native resolution.",
        "intended_use": INTENDED_USE,
        "trained_on": {"phantom_seeds": config_json["train_seeds"], "validation_seeds": config_json["val_seeds"],
                       **_generators(config_json.get("families", ["A"])),
                       **({"augmentation": AUGMENTATION} if config_json.get("augment") else {}),
                       **({"basal_sampling": f"{config_json['basal_fraction']:.0%} of family-B samples drawn at or "
                                             "above the LV base of their phase (atrial slices and the first "
                                             "ventricular ones)"} if config_json.get("basal_fraction") else {}),
                       **({"initial_weights": config_json["init_version"]} if config_json.get("init_version") else {})},
        "metrics": {"validation": validation},
        "conventions": CONVENTIONS,
        "limitations": limitations(config_json),
        "provenance": {"training_config_sha256": config_hash, "training_config": config_json},
    }
