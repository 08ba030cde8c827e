"""Export the lesion labeller to ONNX with its ``config.pbtxt`` and model card.

Same pattern as the other tasks: training ends by writing the best checkpoint as a candidate
into ``RUN/export/<model>/1/`` (via the shared :func:`training.publish.publish_version`);
``aiws evaluate`` runs that candidate through ONNX Runtime exactly as the service does and writes
``RUN/evaluation.json``; ``aiws export RUN`` publishes it as the next version of
``triton_repo/<model>/`` with the evaluation figures in its card
(:func:`training.lung_nodules.export.export_run`, which is task-agnostic).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from models.coronary_ct.calcium import VESSEL_ORDER
from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.coronary_ct.patches import COARSE_STEP_MM, FINE_STEP_MM, PATCH_SHAPE
from training.candidate import OnnxSignature
from training.framework import export as framework_export
from training.framework.spec import ExportSpec, TensorSpec

MAX_BATCH = 512
#: The phantom generator of each family (repository paths).
GENERATORS = {"A": "training/coronary_ct/phantom.py", "B": "training/coronary_ct/phantom_b.py"}

SIGNATURE = OnnxSignature(MODEL_NAME, INPUT_NAME, OUTPUT_NAME, (2, *PATCH_SHAPE), {0: "batch"}, {0: "batch"})

INTENDED_USE = ("Coronary artery calcium scoring (Agatston, volume, mass, CAC-DRS) on ECG-gated non-contrast "
                "cardiac CT at 120 kVp with 2.5-3 mm slices: the network labels each candidate lesion (>= 130 HU, "
                ">= 1 mm2, per slice) as LM, LAD, LCx, RCA or not coronary; the scores are computed exactly from "
                "those labels. A computer-aided result to be reviewed; not a diagnosis.")
LIMITATIONS = [
    "Trained and evaluated on synthetic phantoms only (ellipsoid heart, tube coronaries in epicardial fat, "
    "ellipsoid calcifications; bone, aortic wall, aortic valve and mitral annulus calcium as confounders); "
    "performance on patient CT is unknown until validated on local data.",
    "No stents, pacemaker leads, surgical clips, motion or beam-hardening artefacts; no contrast-enhanced CT.",
    "Kernel and kVp other than 120 kVp change HU and therefore the 130 HU threshold and the weights.",
    "A lesion straddling a vessel boundary (e.g. at the LM bifurcation) gets one label.",
    "Where a lesion lies relative to the aortic root, the ostia and the mitral annulus is read from the patch's "
    "coarse context channel (144 x 144 x 56 mm); there is no explicit centreline or distance along the coronary "
    "course. A version trained on one phantom family only (version 1: family A) labels most left main, circumflex "
    "and right coronary lesions of the independent family B not coronary and counts valve and annulus calcium. "
    "Trained on both families (version 2), family A holds every bar; on unseen family-B phantoms the bars are not "
    "all met: most misses are circumflex and right coronary lesions in the posterior atrioventricular groove taken "
    "for each other (left-dominant hearts), and valve or annulus calcium is still counted in a few phantoms. See "
    "the train -> evaluation family table.",
]
CONVENTIONS = [
    "Candidate >= 130 HU, 2D lesion per axial slice with 8-connectivity, area >= 1 mm2.",
    "Weight by peak HU: 130-199 -> 1, 200-299 -> 2, 300-399 -> 3, >= 400 -> 4.",
    "Labels: the network labels each 2D lesion; lesions touching across adjacent slices (one 3D plaque) share "
    "the label of their pooled, area-weighted log-probabilities.",
    "Agatston reported at 3 mm equivalent: raw x (slice increment / 3 mm).",
    "Volume score = voxel count x pixel area x increment; mass only with a configured calibration factor.",
    "CAC-DRS A0 = 0, A1 1-99, A2 100-299, A3 >= 300 on the score rounded half up; N = calcified vessels.",
]


def export_spec() -> ExportSpec:
    """The labeller's tensors (one multi-scale patch -> one logit per vessel class), dynamic batching and the patch
    grid as ``config.pbtxt`` parameters, for the framework's one exporter."""
    return ExportSpec(model=MODEL_NAME, inputs=(TensorSpec(INPUT_NAME, PATCH_SHAPE),),
                      outputs=(TensorSpec(OUTPUT_NAME, (len(VESSEL_ORDER),)),),
                      example_shapes=(SIGNATURE.example_shape,), max_batch_size=MAX_BATCH,
                      parameters={"classes": ",".join(v.value for v in VESSEL_ORDER),
                                  "fine_step_mm": ",".join(f"{v:g}" for v in FINE_STEP_MM),
                                  "coarse_step_mm": ",".join(f"{v:g}" for v in COARSE_STEP_MM)})


def config_text(instance_count: int = 1) -> str:
    """``config.pbtxt``: ONNX Runtime platform, dynamic batching, the patch grid as parameters."""
    return framework_export.config_text(export_spec(), instance_count)


def candidate_card(config_json: dict[str, Any], config_hash: str, validation: dict[str, Any]) -> dict[str, Any]:
    """The model card of a freshly trained labeller (``aiws evaluate`` adds the evaluation figures)."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": "3D CNN (MONAI Classifier, residual units) on a multi-scale patch per candidate lesion: fine HU "
                   "(1 mm), the lesion mask, and coarse HU context (6 mm) for its position relative to the heart.",
        "intended_use": INTENDED_USE,
        "trained_on": {"phantom_seeds": config_json["train_seeds"], "validation_seeds": config_json["val_seeds"],
                       "families": list(config_json.get("families", ["A"])),
                       "generator": [GENERATORS[f] for f in config_json.get("families", ["A"])],
                       "augmentation": (f"MONAI-batched intensity scale/shift, noise, blur, rotation and zoom, each "
                                        f"with p={config_json['augment']}" if config_json.get("augment") else
                                        "Gaussian noise 0.02")},
        "metrics": {"validation": validation},
        "conventions": CONVENTIONS,
        "limitations": LIMITATIONS,
        "provenance": {"training_config_sha256": config_hash, "training_config": config_json},
    }
