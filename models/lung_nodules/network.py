"""The lung-nodule network: a small MONAI 3D U-Net (training and export only; inference runs the ONNX file).

Input: one channel, HU windowed to [0, 1] on a 1 mm grid (see :mod:`preprocess`). Output of
the trained module: 2 logits (background, nodule). The exported graph appends a softmax and
keeps the nodule channel, so ``config.pbtxt`` declares ``nodule_prob`` with one channel.
LeakyReLU (slope 0.01) + instance norm. Not plain ReLU: in MONAI's UNet the top up-sampling block
ends with norm + activation on the 2 output channels, and a ReLU there caps the nodule probability
at a constant (both channels clipped to 0 leaves only the last bias). ONNX Runtime fuses
Conv+LeakyRelu, which is part of why it beats torch eager on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INPUT_NAME = "ct"
OUTPUT_NAME = "nodule_prob"


@dataclass(frozen=True)
class NetworkConfig:
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    norm: str = "instance"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(f"network strides {self.strides}: need len(channels) - 1 = {len(self.channels) - 1}")
        if self.norm not in ("instance", "batch"):
            raise ValueError(f"network norm {self.norm!r}: 'instance' or 'batch'")

    @property
    def divisor(self) -> int:
        """Patch sizes must be multiples of this (the product of the strides)."""
        out = 1
        for s in self.strides:
            out *= s
        return out


def build_network(config: NetworkConfig) -> Any:
    """The MONAI UNet (a ``torch.nn.Module``) with 2 output channels (logits)."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=config.channels, strides=config.strides,
                num_res_units=config.num_res_units, norm=config.norm,
                act=("leakyrelu", {"negative_slope": 0.01, "inplace": True}), dropout=config.dropout)


def probability_head(network: Any) -> Any:
    """Module mapping the input to the nodule probability (softmax channel 1, kept as 1 channel).

    For two classes softmax channel 1 is exactly ``sigmoid(logit1 - logit0)``; written that way the exported
    graph has no channel-axis Softmax, which ONNX Runtime runs slowly on 5-D tensors (a third of the CPU time).
    """
    import torch

    class _Head(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.net(x)
            return torch.sigmoid(logits[:, 1:2] - logits[:, 0:1])

    return _Head(network)


def build_classifier(channels: tuple[int, ...] = (8, 16, 32, 64), in_channels: int = 2, dropout: float = 0.2) -> Any:
    """The candidate classifier (``classifier.py``), a ``torch.nn.Module``: ``[N, in_channels, s, s, s]`` -> one
    logit ``[N, 1]`` (s a multiple of 2 ** (len(channels) - 1)).

    A 3 x 3 x 3 convolution (batch norm, LeakyReLU) at full size, then for each further width a 2 x 2 x 2
    max-pool and two convolutions (one for the last); the mean and the maximum over the last feature map
    go through dropout to a linear layer. About 0.1 M parameters; batch norm folds into the convolutions
    in the exported graph.
    """
    import torch
    from torch import nn

    def conv(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv3d(i, o, 3, padding=1, bias=False), nn.BatchNorm3d(o),
                             nn.LeakyReLU(0.01, inplace=True))

    layers: list[nn.Module] = [conv(in_channels, channels[0])]
    for k, width in enumerate(channels[1:], start=1):
        layers += [nn.MaxPool3d(2), conv(channels[k - 1], width)]
        if k < len(channels) - 1:
            layers.append(conv(width, width))

    class _Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels[-1], 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            return self.head(torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1))

    return _Classifier()
