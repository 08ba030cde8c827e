"""Build the runtime named by the settings: the only place that chooses a backend."""
from __future__ import annotations

from models.runtime.base import InferenceRuntime
from models.runtime.repository import ModelRepository
from models.runtime.settings import RuntimeSettings


def make_runtime(settings: RuntimeSettings) -> InferenceRuntime:
    """An :class:`OnnxRuntime` or a :class:`TritonRuntime` over ``settings.model_repository``.

    Raises:
        ModelConfigError: ``device = "cuda"`` without a CUDA execution provider (ONNX Runtime).
    """
    repository = ModelRepository(settings.model_repository)
    if settings.backend == "triton":
        from models.runtime.triton import TritonRuntime

        return TritonRuntime(repository, settings.triton_url, settings.triton_protocol, settings.timeout_seconds,
                             settings.triton_shared_memory)
    from models.runtime.ort import OnnxRuntime

    return OnnxRuntime(repository, settings.device, settings.intra_op_threads)
