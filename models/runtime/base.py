"""One interface for running a network: :class:`InferenceRuntime`.

The base class does what both backends share: it reads the model's ``config.pbtxt`` from the
repository, resolves the version, checks the inputs against the declared names, data types and
dims, splits a large batch into ``max_batch_size`` chunks, and checks the outputs. A backend only
implements :meth:`InferenceRuntime._run_batch`.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from models.runtime.errors import InferenceFailed
from models.runtime.model_config import ModelSpec, TensorSpec
from models.runtime.repository import ModelRepository

LOGGER = logging.getLogger(__name__)

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class InferenceResult:
    """Outputs by name, and the model version that produced them."""

    model: str
    version: int
    outputs: dict[str, np.ndarray]


def _check_tensor(spec: ModelSpec, tensor: TensorSpec, array: np.ndarray, kind: str) -> None:
    shape = spec.full_shape(tensor)
    if array.dtype != tensor.dtype:
        raise InferenceFailed(f"model {spec.name}: {kind} {tensor.name!r} has dtype {array.dtype}, "
                              f"config.pbtxt declares {tensor.data_type} ({tensor.dtype})")
    if array.ndim != len(shape):
        raise InferenceFailed(f"model {spec.name}: {kind} {tensor.name!r} has shape {array.shape}, "
                              f"config.pbtxt declares rank {len(shape)} {shape}")
    for got, want in zip(array.shape, shape, strict=True):
        if want != -1 and got != want:
            raise InferenceFailed(f"model {spec.name}: {kind} {tensor.name!r} has shape {array.shape}, "
                                  f"config.pbtxt declares {shape}")


def check_inputs(spec: ModelSpec, inputs: Arrays) -> int:
    """Validate *inputs* against *spec*; return the batch size (0 for an unbatched model).

    Raises:
        InferenceFailed: missing or unknown input names, wrong dtype or shape, unequal batch sizes.
    """
    names = {t.name for t in spec.inputs}
    if set(inputs) != names:
        raise InferenceFailed(f"model {spec.name}: inputs {sorted(inputs)} given, config.pbtxt declares {sorted(names)}")
    for tensor in spec.inputs:
        _check_tensor(spec, tensor, inputs[tensor.name], "input")
    if not spec.batched:
        return 0
    sizes = {inputs[t.name].shape[0] for t in spec.inputs}
    if len(sizes) != 1 or 0 in sizes:
        raise InferenceFailed(f"model {spec.name}: inputs have batch sizes {sorted(sizes)}; need one size >= 1")
    return sizes.pop()


def check_outputs(spec: ModelSpec, outputs: Arrays, batch: int) -> None:
    """Validate what a backend returned.

    Raises:
        InferenceFailed: a declared output missing, or its dtype/shape/batch size differs.
    """
    for tensor in spec.outputs:
        if tensor.name not in outputs:
            raise InferenceFailed(f"model {spec.name}: backend returned no output {tensor.name!r}")
        array = outputs[tensor.name]
        _check_tensor(spec, tensor, array, "output")
        if batch and array.shape[0] != batch:
            raise InferenceFailed(f"model {spec.name}: output {tensor.name!r} has batch {array.shape[0]}, "
                                  f"expected {batch}")


class InferenceRuntime(abc.ABC):
    """Runs networks of a :class:`ModelRepository`. Subclasses: ONNX Runtime, Triton."""

    backend: str = ""
    #: Requests sliding-window inference keeps in flight: with 2, the previous batch is blended (and, for a
    #: server, the next one travels) while the current one runs. Results are blended in patch order either
    #: way, so the output is the same bit for bit (bench/infer.py: Triton gRPC overhead +36 % -> +5 %;
    #: in-process ONNX Runtime within the machine's noise, -10 % to +5 %).
    requests_in_flight: int = 2

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def spec(self, model: str) -> ModelSpec:
        """The parsed ``config.pbtxt`` of *model* (see :meth:`ModelRepository.spec`)."""
        return self.repository.spec(model)

    def resolve_version(self, model: str, version: int | None = None) -> int:
        """The version a call with *version* runs (latest served when None); resolve once per volume."""
        return self.repository.resolve_version(model, version)

    def infer(self, model: str, inputs: Arrays, version: int | None = None) -> InferenceResult:
        """Run *model* on *inputs* (name -> array, shapes with the batch dimension when batched).

        Raises:
            ModelNotFound, ModelConfigError, InferenceFailed: permanent problems.
            ServerUnavailable, ModelNotReady: transient (``RetryLater``), Triton only.
        """
        spec = self.spec(model)
        resolved = self.resolve_version(model, version)
        batch = check_inputs(spec, inputs)
        step = spec.max_batch_size if spec.batched else 0
        if not step or batch <= step:
            outputs = self._run_batch(spec, resolved, inputs)
        else:
            parts = [self._run_batch(spec, resolved, {k: v[i:i + step] for k, v in inputs.items()})
                     for i in range(0, batch, step)]
            outputs = {t.name: np.concatenate([p[t.name] for p in parts]) for t in spec.outputs}
        check_outputs(spec, outputs, batch)
        return InferenceResult(model=model, version=resolved, outputs={t.name: outputs[t.name] for t in spec.outputs})

    @abc.abstractmethod
    def _run_batch(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        """Run one batch of at most ``max_batch_size``; return every declared output by name."""

    def close(self) -> None:
        """Release sessions or connections. The runtime may not be used afterwards."""

    def __enter__(self) -> InferenceRuntime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Backend details for logs and model provenance."""
        return {"backend": self.backend, "repository": str(self.repository.root)}
