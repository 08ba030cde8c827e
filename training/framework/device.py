"""Where a run computes: ``--device auto|cpu|cuda[:N]`` and its mixed precision.

``auto`` is CUDA (device 0) when ``torch.cuda.is_available()``, else the CPU. Mixed precision (``[train] amp``):
``auto`` is float16 autocast with a gradient scaler on CUDA and full float32 on the CPU; ``bf16`` is bfloat16
autocast (no scaler) on either; ``fp16`` is CUDA only; ``off`` is float32.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.framework.spec import TaskError

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device`` *name*.

    Raises:
        TaskError: a malformed name, or CUDA asked for where there is none (or not that many devices).
    """
    import torch

    if not _DEVICE.match(name):
        raise TaskError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TaskError(f"--device {name}: torch sees no CUDA device here (use --device auto or cpu)")
    index = int(name.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise TaskError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(f"cuda:{index}")


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: float32) and whether gradients are scaled (float16 on CUDA)."""

    dtype: Any
    scaled: bool

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def precision(amp: str, device: torch.device) -> Precision:
    """The mixed precision of ``[train] amp`` *amp* on *device*.

    Raises:
        TaskError: ``fp16`` on the CPU.
    """
    import torch

    cuda = device.type == "cuda"
    if amp == "off" or (amp == "auto" and not cuda):
        return Precision(None, False)
    if amp == "bf16":
        return Precision(torch.bfloat16, False)
    if not cuda:
        raise TaskError("[train] amp = 'fp16' needs a CUDA device (use 'bf16' or 'off' on the CPU)")
    return Precision(torch.float16, True)


def autocast(device: torch.device, prec: Precision) -> Any:
    """The ``torch.autocast`` context of *prec* on *device* (disabled for float32)."""
    import torch

    return torch.autocast(device_type=device.type, dtype=prec.dtype or torch.float32, enabled=prec.dtype is not None)
