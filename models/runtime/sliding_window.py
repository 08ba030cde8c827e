"""Sliding-window inference over a 3D volume: overlapping patches, Gaussian blending, batched.

The same code path for every backend: patches go through :meth:`InferenceRuntime.infer`, so
ONNX Runtime and Triton see identical requests; ``InferenceRuntime.requests_in_flight`` requests
go at once (results are blended in patch order either way, so the output does not depend on it).
numpy only.

The patch size (ROI) is the model's input dims in ``config.pbtxt`` (``[channels, z, y, x]``,
batch dimension implicit). The model version is resolved ONCE per volume, so a new version
exported mid-volume (hot reload) never mixes two versions in one result.
"""
from __future__ import annotations

import itertools
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from models.runtime.base import InferenceRuntime
from models.runtime.errors import InferenceFailed, ModelConfigError
from models.runtime.model_config import ModelSpec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlidingWindow:
    """Tiling parameters.

    Attributes:
        overlap: fraction of the ROI shared by neighbouring patches along each axis, in [0, 1).
        sigma_scale: Gaussian sigma as a fraction of the ROI size (0.125 as nnU-Net and MONAI).
        batch_size: patches per request, capped at the model's ``max_batch_size``.
        pad_value: value used where the volume is smaller than the ROI (in the network's input units).
    """

    overlap: float = 0.25
    sigma_scale: float = 0.125
    batch_size: int = 4
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"sliding window overlap {self.overlap}: must be in [0, 1)")
        if not self.sigma_scale > 0:
            raise ValueError(f"sliding window sigma_scale {self.sigma_scale}: must be > 0")
        if self.batch_size < 1:
            raise ValueError(f"sliding window batch_size {self.batch_size}: must be >= 1")


@dataclass(frozen=True)
class WindowResult:
    """Blended output ``(channels, z, y, x)`` float32, the model version used and the patch count."""

    output: np.ndarray
    version: int
    patches: int


def gaussian_weights(roi: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    """Separable Gaussian importance map of shape *roi*, peak 1, floor 1e-3 (edges still count a little)."""
    weights = np.ones(roi, dtype=np.float64)
    for axis, size in enumerate(roi):
        x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        g = np.exp(-0.5 * (x / (sigma_scale * size)) ** 2)
        shape = [1] * len(roi)
        shape[axis] = size
        weights = weights * g.reshape(shape)
    weights /= weights.max()
    return np.maximum(weights, 1e-3).astype(np.float32)


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices along one axis covering ``[0, size)`` with patches of *roi* (``size >= roi``)."""
    if size <= roi:
        return [0]
    step = max(1, int(round(roi * (1.0 - overlap))))
    starts = list(range(0, size - roi, step))
    starts.append(size - roi)
    return sorted(set(starts))


def _roi(spec: ModelSpec) -> tuple[int, int, tuple[int, int, int]]:
    """(input channels, output channels, ROI) from the model's single input and first output."""
    if len(spec.inputs) != 1:
        raise ModelConfigError(f"model {spec.name}: sliding window needs exactly one input, has {len(spec.inputs)}")
    dims_in, dims_out = spec.inputs[0].dims, spec.outputs[0].dims
    if not spec.batched or len(dims_in) != 4 or any(d <= 0 for d in dims_in):
        raise ModelConfigError(f"model {spec.name}: sliding window needs max_batch_size > 0 and fixed input dims "
                               f"[channels, z, y, x]; config.pbtxt has max_batch_size {spec.max_batch_size}, "
                               f"dims {list(dims_in)}")
    if len(dims_out) != 4 or tuple(dims_out[1:]) != tuple(dims_in[1:]):
        raise ModelConfigError(f"model {spec.name}: output dims {list(dims_out)} must be [channels] + the "
                               f"input's spatial dims {list(dims_in[1:])}")
    return dims_in[0], dims_out[0], (dims_in[1], dims_in[2], dims_in[3])


def sliding_window_inference(runtime: InferenceRuntime, model: str, volume: np.ndarray,
                             window: SlidingWindow = SlidingWindow(), version: int | None = None) -> WindowResult:
    """Run *model* over *volume* (``(z, y, x)`` or ``(channels, z, y, x)``) patch by patch.

    Returns the model's first output blended with Gaussian weights, same spatial shape as *volume*.

    Raises:
        ModelConfigError: the model's dims do not fit sliding-window inference.
        InferenceFailed: *volume* has the wrong number of channels or dimensions.
        RetryLater: from the runtime (Triton down or model not ready).
    """
    spec = runtime.spec(model)
    channels, out_channels, roi = _roi(spec)
    array = volume[np.newaxis] if volume.ndim == 3 else volume
    if array.ndim != 4 or array.shape[0] != channels:
        raise InferenceFailed(f"model {model}: volume of shape {volume.shape} does not give {channels} channel(s) "
                              f"of a 3D image")
    resolved = runtime.resolve_version(model, version)
    shape = array.shape[1:]
    padded_shape = tuple(max(s, r) for s, r in zip(shape, roi, strict=True))
    dtype = spec.inputs[0].dtype
    if padded_shape != shape:
        pad = [(0, 0)] + [(0, p - s) for p, s in zip(padded_shape, shape, strict=True)]
        array = np.pad(array, pad, mode="constant", constant_values=window.pad_value)
    array = array.astype(dtype, copy=False)
    weights = gaussian_weights(roi, window.sigma_scale)
    out = np.zeros((out_channels, *padded_shape), dtype=np.float32)
    wsum = np.zeros(padded_shape, dtype=np.float32)
    starts = list(itertools.product(*(window_starts(p, r, window.overlap) for p, r in zip(padded_shape, roi,
                                                                                          strict=True))))
    batch = min(window.batch_size, spec.max_batch_size)
    name_in, name_out = spec.inputs[0].name, spec.outputs[0].name

    def request(chunk: list[tuple[int, ...]]) -> tuple[list[tuple[slice, ...]], np.ndarray]:
        slices = [tuple(slice(s, s + r) for s, r in zip(st, roi, strict=True)) for st in chunk]
        patches = np.stack([array[(slice(None), *sl)] for sl in slices])
        return slices, runtime.infer(model, {name_in: patches}, version=resolved).outputs[name_out]

    def blend(slices: list[tuple[slice, ...]], result: np.ndarray) -> None:
        for pred, sl in zip(result, slices, strict=True):
            out[(slice(None), *sl)] += pred.astype(np.float32) * weights
            wsum[sl] += weights

    chunks = [starts[i:i + batch] for i in range(0, len(starts), batch)]
    depth = max(1, min(runtime.requests_in_flight, len(chunks)))
    if depth == 1:
        for chunk in chunks:
            blend(*request(chunk))
    else:  # keep *depth* requests in flight, blend in order as they come back
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="window") as pool:
            pending: deque[Future[tuple[list[tuple[slice, ...]], np.ndarray]]] = deque()
            try:
                for chunk in chunks:
                    pending.append(pool.submit(request, chunk))
                    if len(pending) >= depth:
                        blend(*pending.popleft().result())
                while pending:
                    blend(*pending.popleft().result())
            finally:
                for future in pending:
                    future.cancel()
    out /= wsum
    crop = (slice(None), *(slice(0, s) for s in shape))
    LOGGER.debug("sliding window %s v%d: %d patches of %s over %s", model, resolved, len(starts), roi, shape)
    return WindowResult(output=np.ascontiguousarray(out[crop]), version=resolved, patches=len(starts))
