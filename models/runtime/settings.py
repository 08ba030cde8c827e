"""Runtime settings: plain values, built by the composition root from ``[runtime]``.

``models`` never imports ``aiws``; the service does
``RuntimeSettings(**config.runtime.model_dump())``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Backend = Literal["onnxruntime", "triton"]
Protocol = Literal["grpc", "http"]
Device = Literal["auto", "cpu", "cuda"]

_BACKENDS = ("onnxruntime", "triton")
_PROTOCOLS = ("grpc", "http")
_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RuntimeSettings:
    """How networks are run.

    Attributes:
        model_repository: the ``triton_repo/`` folder (``<model>/config.pbtxt``, ``<model>/<n>/model.onnx``).
        backend: ``onnxruntime`` (in-process) or ``triton`` (remote server).
        triton_url: ``host:port`` of the server (gRPC port for ``grpc``, HTTP port for ``http``).
        triton_protocol: ``grpc`` or ``http``.
        triton_shared_memory: pass tensors through system shared memory (Triton on the same host only).
        timeout_seconds: per-request timeout towards Triton (connect and inference), seconds.
        device: ``auto`` (CUDA execution provider when available), ``cpu`` or ``cuda`` (error if absent).
        intra_op_threads: ONNX Runtime threads per session; 0 lets ONNX Runtime choose.
    """

    model_repository: Path
    backend: Backend = "onnxruntime"
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Protocol = "grpc"
    triton_shared_memory: bool = False
    timeout_seconds: float = 120.0
    device: Device = "auto"
    intra_op_threads: int = 0

    def __post_init__(self) -> None:
        if self.backend not in _BACKENDS:
            raise ValueError(f"runtime backend {self.backend!r}: must be one of {', '.join(_BACKENDS)}")
        if self.triton_protocol not in _PROTOCOLS:
            raise ValueError(f"triton protocol {self.triton_protocol!r}: must be one of {', '.join(_PROTOCOLS)}")
        if self.device not in _DEVICES:
            raise ValueError(f"runtime device {self.device!r}: must be one of {', '.join(_DEVICES)}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"runtime timeout_seconds {self.timeout_seconds}: must be > 0")
        if self.intra_op_threads < 0:
            raise ValueError(f"runtime intra_op_threads {self.intra_op_threads}: must be >= 0")
