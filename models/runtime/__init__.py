"""Run networks from ``triton_repo/`` through ONNX Runtime (in-process) or Triton, behind one interface.

    settings = RuntimeSettings(model_repository=Path("triton_repo"))     # backend="onnxruntime"
    with make_runtime(settings) as runtime:
        result = sliding_window_inference(runtime, "lung_nodules", volume)

Both backends read ``<model>/config.pbtxt`` for tensor names, dims, data types and batch size.
Transient failures (Triton down, model loading) raise :class:`models.errors.RetryLater`.
"""
from __future__ import annotations

from models.runtime.base import InferenceResult, InferenceRuntime, check_inputs
from models.runtime.errors import (
    InferenceFailed,
    ModelConfigError,
    ModelNotFound,
    ModelNotReady,
    ServerUnavailable,
)
from models.runtime.factory import make_runtime
from models.runtime.model_config import ModelSpec, TensorSpec, VersionPolicy, parse_model_config, read_model_config
from models.runtime.repository import ModelRepository
from models.runtime.settings import RuntimeSettings
from models.runtime.sliding_window import SlidingWindow, WindowResult, gaussian_weights, sliding_window_inference

__all__ = [
    "InferenceFailed", "InferenceResult", "InferenceRuntime", "ModelConfigError", "ModelNotFound", "ModelNotReady",
    "ModelRepository", "ModelSpec", "RuntimeSettings", "ServerUnavailable", "SlidingWindow", "TensorSpec",
    "VersionPolicy", "WindowResult", "check_inputs", "gaussian_weights", "make_runtime", "parse_model_config",
    "read_model_config", "sliding_window_inference",
]
