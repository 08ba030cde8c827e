"""The lesion and density network: a small 2D MONAI U-Net with three sigmoid heads.

Input: one channel, the canonical image resampled to :data:`WORKING_SPACING_MM` and normalised by
:func:`models.mammography.preprocess.normalise`. Output (logits, same height and width):
channel 0 fibroglandular (dense) tissue, 1 mass, 2 calcification cluster. Torch and MONAI are used
for the definition and training only; the service runs the exported ONNX file.
"""
from __future__ import annotations

from dataclasses import dataclass

CHANNELS: tuple[str, str, str] = ("dense", "mass", "calcification_cluster")


@dataclass(frozen=True)
class NetworkConfig:
    channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 1

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        m = 1
        for s in self.strides:
            m *= s
        return m


def build_network(config: NetworkConfig = NetworkConfig()):
    """A MONAI ``UNet`` (2D, 1 input channel, len(CHANNELS) logits)."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=len(CHANNELS), channels=config.channels,
                strides=config.strides, num_res_units=config.num_res_units, norm="batch")


#: Tensor names and tile size of the exported model (the service runs it tile by tile through
#: :func:`models.runtime.sliding_window_inference`, input dims [1, 1, TILE, TILE] = [channels, z, y, x]).
INPUT_NAME = "mammogram"
OUTPUT_NAME = "logits"
TILE = 512


def export_head(network):
    """Module for export: (N, 1, 1, H, W) normalised image -> (N, 3, 1, H, W) logits.

    The singleton z axis lets the 3D sliding-window code of :mod:`models.runtime` tile 2D images.
    """
    import torch

    class _Head(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x[:, :, 0]).unsqueeze(2)

    return _Head(network)
