"""The lesion labeller network (MONAI), for training and export only; the pipeline runs the ONNX file.

Input ``patches`` (batch, 3, 7, 24, 24) float32 (see :mod:`models.coronary_ct.patches`);
output ``logits`` (batch, 5) over :data:`models.coronary_ct.calcium.VESSEL_ORDER`
(not coronary, LM, LAD, LCx, RCA).
"""
from __future__ import annotations

from typing import Any

from models.coronary_ct.calcium import VESSEL_ORDER
from models.coronary_ct.patches import PATCH_SHAPE

MODEL_NAME = "coronary_calcium_labeller"
INPUT_NAME = "patches"
OUTPUT_NAME = "logits"


def build_network(channels: tuple[int, ...] = (16, 32, 64), dropout: float = 0.1) -> Any:
    """A MONAI ``Classifier`` (residual 3D conv encoder + linear head), about 1 MB of weights."""
    from monai.networks.nets import Classifier

    return Classifier(
        in_shape=PATCH_SHAPE,
        classes=len(VESSEL_ORDER),
        channels=channels,
        strides=(2,) * len(channels),
        num_res_units=1,
        dropout=dropout,
    )
