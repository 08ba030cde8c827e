"""Export the cine segmentation U-Net to ONNX with its ``config.pbtxt`` and model card.

Same pattern as the other tasks (see :mod:`training.coronary_ct.export`): a candidate in
``RUN/export/<model>/1/`` written with the shared :func:`training.publish.publish_version`,
evaluated by ``aiws evaluate`` and published by ``aiws export``.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2 as pb

from models.cardiac_mri.network import INPUT_NAME, MODEL_NAME, N_CLASSES, OUTPUT_NAME
from models.runtime.model_config import message_to_text
from models.runtime.repository import MODEL_FILENAME
from training.publish import publish_version

CANDIDATE_DIR = "export"
MAX_BATCH = 32

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


def onnx_file(network: Any, path: Path, opset: int = 17) -> None:
    """Write *network* as ONNX: input ``image`` [N, 1, H, W], output ``logits`` [N, 4, H, W] (H, W dynamic)."""
    import onnx
    import torch

    net = network.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(1, 1, 160, 160),), str(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                          opset_version=opset, dynamo=False)
    onnx.checker.check_model(str(path))


def config_text(instance_count: int = 1) -> str:
    """``config.pbtxt``: ONNX Runtime platform, dynamic image size (multiples of 16), dynamic batching."""
    msg = pb.ModelConfig(name=MODEL_NAME, platform="onnxruntime_onnx", max_batch_size=MAX_BATCH)
    msg.input.add(name=INPUT_NAME, data_type=pb.TYPE_FP32, dims=[1, -1, -1])
    msg.output.add(name=OUTPUT_NAME, data_type=pb.TYPE_FP32, dims=[N_CLASSES, -1, -1])
    msg.version_policy.latest.num_versions = 1
    msg.dynamic_batching.max_queue_delay_microseconds = 2000
    msg.instance_group.add(count=instance_count, kind=pb.ModelInstanceGroup.KIND_AUTO)
    msg.parameters["classes"].string_value = "background,lv_blood_pool,lv_myocardium,rv_blood_pool"
    msg.parameters["normalisation"].string_value = "per image / 99th percentile; pad to a multiple of 16"
    return message_to_text(msg)


def candidate_card(config_json: dict[str, Any], config_hash: str, validation: dict[str, Any]) -> dict[str, Any]:
    """The model card of a freshly trained segmenter (``aiws evaluate`` adds the evaluation figures)."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": "2D U-Net (MONAI, residual units) segmenting LV blood pool, LV myocardium and RV blood pool on "
                   "each cine image at its native resolution.",
        "intended_use": INTENDED_USE,
        "trained_on": {"phantom_seeds": config_json["train_seeds"], "validation_seeds": config_json["val_seeds"],
                       "generator": "training/cardiac_mri/phantom.py"},
        "metrics": {"validation": validation},
        "conventions": CONVENTIONS,
        "limitations": LIMITATIONS,
        "provenance": {"training_config_sha256": config_hash, "training_config": config_json},
    }


def write_candidate(run_dir: Path, network: Any, card: dict[str, Any]) -> Path:
    """Export *network* into ``RUN/export/<model>/1/`` (replacing an earlier candidate); returns the ONNX path."""
    root = run_dir / CANDIDATE_DIR
    if root.exists():
        shutil.rmtree(root)
    tmp = run_dir / "model.onnx.tmp"
    onnx_file(network, tmp)
    publish_version(root, MODEL_NAME, tmp, config_text(), card, version=1)
    tmp.unlink()
    return root / MODEL_NAME / "1" / MODEL_FILENAME
