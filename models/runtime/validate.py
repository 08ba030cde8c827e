"""Check a ``config.pbtxt`` against its ONNX file: names, data types, ranks and dims.

Triton's ``onnxruntime_onnx`` platform loads a model only when these agree; we check the same
rules before a model is shipped (``aiws export``) and in the test over ``triton_repo/``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

from models.runtime.errors import ModelConfigError
from models.runtime.model_config import ModelSpec, TensorSpec

LOGGER = logging.getLogger(__name__)

#: ONNX ``TensorProto`` element type -> Triton data type (without ``TYPE_``).
ONNX_TO_TRITON: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
}


@dataclass(frozen=True)
class OnnxTensor:
    """A graph input or output: name, Triton data type, shape with -1 for symbolic dims."""

    name: str
    data_type: str
    shape: tuple[int, ...]


def _tensor(value: onnx.ValueInfoProto) -> OnnxTensor:
    ttype = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim)
    return OnnxTensor(value.name, ONNX_TO_TRITON.get(ttype.elem_type, f"onnx:{ttype.elem_type}"), shape)


def onnx_signature(path: Path) -> tuple[list[OnnxTensor], list[OnnxTensor]]:
    """Inputs (without initializers) and outputs of the ONNX graph in *path*.

    Raises:
        ModelConfigError: the file cannot be read as an ONNX model.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError) as exc:
        raise ModelConfigError(f"{path}: not a readable ONNX model: {exc}") from None
    init = {i.name for i in model.graph.initializer}
    inputs = [_tensor(v) for v in model.graph.input if v.name not in init]
    return inputs, [_tensor(v) for v in model.graph.output]


def _compare(spec: ModelSpec, declared: TensorSpec, actual: OnnxTensor, kind: str) -> list[str]:
    problems = []
    if declared.data_type != actual.data_type:
        problems.append(f"{kind} {declared.name!r}: config.pbtxt {declared.data_type}, ONNX {actual.data_type}")
    want = spec.full_shape(declared)
    if len(want) != len(actual.shape):
        return [*problems, f"{kind} {declared.name!r}: config.pbtxt rank {len(want)} {list(want)}, "
                           f"ONNX rank {len(actual.shape)} {list(actual.shape)}"]
    if spec.batched and actual.shape[0] not in (-1,):
        problems.append(f"{kind} {declared.name!r}: max_batch_size {spec.max_batch_size} needs a dynamic first "
                        f"ONNX dim, ONNX has {actual.shape[0]}")
    for axis, (w, a) in enumerate(zip(want, actual.shape, strict=True)):
        if (spec.batched and axis == 0) or a == -1:
            continue
        if w != a:
            problems.append(f"{kind} {declared.name!r} dim {axis}: config.pbtxt {w}, ONNX {a}")
    return problems


def check_against_onnx(spec: ModelSpec, path: Path) -> None:
    """Raise unless *spec* (a parsed ``config.pbtxt``) describes the ONNX graph in *path*.

    Rules: the same input names (exactly) and the declared outputs exist; equal data types; the
    rank equals ``len(dims)`` (+1 for the batch dim when ``max_batch_size > 0``, which must be
    dynamic in ONNX); every fixed ONNX dim equals the declared one.

    Raises:
        ModelConfigError: every mismatch, one per line, naming the tensor and both values.
    """
    inputs, outputs = onnx_signature(path)
    by_name_in = {t.name: t for t in inputs}
    by_name_out = {t.name: t for t in outputs}
    problems = []
    if set(by_name_in) != {t.name for t in spec.inputs}:
        problems.append(f"inputs: config.pbtxt {[t.name for t in spec.inputs]}, ONNX {list(by_name_in)}")
    for kind, declared_list, actual in (("input", spec.inputs, by_name_in), ("output", spec.outputs, by_name_out)):
        for declared in declared_list:
            if declared.name not in actual:
                if kind == "output":
                    problems.append(f"output {declared.name!r}: not an ONNX output (ONNX has {list(actual)})")
                continue
            problems.extend(_compare(spec, declared, actual[declared.name], kind))
    if problems:
        raise ModelConfigError(f"model {spec.name} ({path}): config.pbtxt does not match the ONNX file:\n  "
                               + "\n  ".join(problems))
