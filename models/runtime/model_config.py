"""Triton ``config.pbtxt`` (protobuf text format) parsed into a small typed :class:`ModelSpec`.

The file is parsed with Triton's own ``ModelConfig`` protobuf schema (shipped with
``tritonclient``), so an unknown field or a typo is an error, exactly as in Triton. Both
runtimes take tensor names, shapes, data types and ``max_batch_size`` from here; nothing about
a model is hard-coded in the runtimes.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message
from tritonclient.grpc import model_config_pb2 as pb

from models.runtime.errors import ModelConfigError

LOGGER = logging.getLogger(__name__)

#: Triton data type (without ``TYPE_``) -> numpy dtype.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, Triton data type (``FP32`` …) and dims WITHOUT the batch dim (-1 = any)."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return NUMPY_DTYPES[self.data_type]


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions the server serves: ``latest`` (the ``num_versions`` highest), ``all`` or ``specific``."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: list[int]) -> list[int]:
        """The served versions among *available*, highest first."""
        ordered = sorted(available, reverse=True)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[: self.num_versions]


@dataclass(frozen=True)
class ModelSpec:
    """What a runtime needs to know about a model, from its ``config.pbtxt``."""

    name: str
    platform: str
    backend: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    version_policy: VersionPolicy = VersionPolicy()
    parameters: Mapping[str, str] = field(default_factory=dict)
    dynamic_batching: bool = False
    instance_count: int = 1

    @property
    def batched(self) -> bool:
        """True when the first dimension of every tensor is an implicit batch dimension."""
        return self.max_batch_size > 0

    def full_shape(self, tensor: TensorSpec) -> tuple[int, ...]:
        """Shape including the batch dimension (-1) when the model is batched."""
        return (-1, *tensor.dims) if self.batched else tensor.dims

    def input(self, name: str) -> TensorSpec:
        return _named(self.inputs, name, self.name, "input")

    def output(self, name: str) -> TensorSpec:
        return _named(self.outputs, name, self.name, "output")

    def parameter(self, key: str) -> str:
        """A ``parameters { key: … value { string_value: … } }`` entry.

        Raises:
            ModelConfigError: the key is absent.
        """
        if key not in self.parameters:
            raise ModelConfigError(f"model {self.name}: config.pbtxt has no parameter {key!r}")
        return self.parameters[key]

    def float_list_parameter(self, key: str) -> tuple[float, ...]:
        """A comma-separated list of numbers stored as a string parameter (e.g. ``"1.0,1.0,1.0"``)."""
        raw = self.parameter(key)
        try:
            return tuple(float(part) for part in raw.split(","))
        except ValueError:
            raise ModelConfigError(f"model {self.name}: parameter {key}={raw!r} is not a list of numbers") from None


def _named(tensors: tuple[TensorSpec, ...], name: str, model: str, kind: str) -> TensorSpec:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    known = ", ".join(t.name for t in tensors)
    raise ModelConfigError(f"model {model}: no {kind} named {name!r} (config.pbtxt has {known})")


def parse_message(text: str, origin: str) -> Message:
    """Parse protobuf text into Triton's ``ModelConfig`` message.

    Raises:
        ModelConfigError: syntax error or unknown field, naming *origin*.
    """
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ModelConfigError(f"{origin}: not a valid Triton model configuration: {exc}") from None


def _tensor(msg: Any, model: str) -> TensorSpec:
    data_type = pb.DataType.Name(msg.data_type).removeprefix("TYPE_")
    if data_type not in NUMPY_DTYPES:
        raise ModelConfigError(f"model {model}: tensor {msg.name!r} has unsupported data type {data_type}")
    if not msg.dims:
        raise ModelConfigError(f"model {model}: tensor {msg.name!r} has no dims")
    return TensorSpec(name=msg.name, data_type=data_type, dims=tuple(int(d) for d in msg.dims))


def _policy(msg: Any) -> VersionPolicy:
    if not msg.HasField("version_policy"):
        return VersionPolicy()
    which = msg.version_policy.WhichOneof("policy_choice")
    if which == "all":
        return VersionPolicy(kind="all")
    if which == "specific":
        return VersionPolicy(kind="specific", versions=tuple(int(v) for v in msg.version_policy.specific.versions))
    return VersionPolicy(kind="latest", num_versions=max(1, int(msg.version_policy.latest.num_versions)))


def spec_from_message(msg: Any, origin: str) -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed ``ModelConfig`` message.

    Raises:
        ModelConfigError: no name, no inputs/outputs, a negative ``max_batch_size``, a bad data type.
    """
    if not msg.name:
        raise ModelConfigError(f"{origin}: config.pbtxt has no 'name'")
    if not msg.input or not msg.output:
        raise ModelConfigError(f"{origin}: model {msg.name} needs at least one input and one output")
    if msg.max_batch_size < 0:
        raise ModelConfigError(f"{origin}: max_batch_size {msg.max_batch_size} is negative")
    return ModelSpec(
        name=msg.name,
        platform=msg.platform,
        backend=msg.backend,
        max_batch_size=int(msg.max_batch_size),
        inputs=tuple(_tensor(t, msg.name) for t in msg.input),
        outputs=tuple(_tensor(t, msg.name) for t in msg.output),
        version_policy=_policy(msg),
        parameters={k: v.string_value for k, v in msg.parameters.items()},
        dynamic_batching=msg.HasField("dynamic_batching"),
        instance_count=sum(int(g.count) or 1 for g in msg.instance_group) or 1,
    )


def parse_model_config(text: str, origin: str = "config.pbtxt") -> ModelSpec:
    """Parse the text of a ``config.pbtxt``.

    Raises:
        ModelConfigError: see :func:`parse_message` and :func:`spec_from_message`.
    """
    return spec_from_message(parse_message(text, origin), origin)


def read_model_config(path: Path) -> ModelSpec:
    """Read and parse ``<model>/config.pbtxt``; the ``name`` must equal the folder name (a Triton rule).

    Raises:
        ModelConfigError: unreadable file, parse error, or a name that differs from the folder.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read model configuration: {exc.strerror}") from None
    spec = parse_model_config(text, str(path))
    if spec.name != path.parent.name:
        raise ModelConfigError(f"{path}: name {spec.name!r} differs from its folder {path.parent.name!r}")
    return spec


def message_to_text(msg: Message) -> str:
    """Protobuf text of a ``ModelConfig`` message, as written into ``config.pbtxt``."""
    return str(text_format.MessageToString(msg))
