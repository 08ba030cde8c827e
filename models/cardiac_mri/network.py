"""The cine segmentation network (MONAI 2D U-Net), for training and export only; the pipeline runs the ONNX file.

Input ``image`` (batch, 1, H, W) float32, H and W multiples of 16, each image scaled by
:func:`models.cardiac_mri.segment.normalise`; output ``logits`` (batch, 4, H, W) over
background, LV blood pool, LV myocardium, RV blood pool.
"""
from __future__ import annotations

from typing import Any

MODEL_NAME = "cardiac_cine_segmenter"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
N_CLASSES = 4


def build_network(channels: tuple[int, ...] = (16, 32, 64, 128), num_res_units: int = 1) -> Any:
    """A MONAI ``UNet`` (2D, residual units, instance norm), about 2 MB of weights."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=N_CLASSES,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=num_res_units,
    )
