"""The one ONNX exporter and ``config.pbtxt`` writer of every task, and weights back from a published version.

- :func:`config_text`: ``config.pbtxt`` from an :class:`~training.framework.spec.ExportSpec` (ONNX Runtime
  platform, latest version only, dynamic batching, one instance of kind AUTO, string parameters) — the same
  text the four per-task writers produced for the shipped models.
- :func:`onnx_file`: the trained module with its export head, traced by the TorchScript exporter
  (``dynamo=False``, opset 17, constant folding) as the shipped models were, so initializer and tensor names stay
  those of the shipped versions; dynamic axes from the spec (or given); checked with ``onnx.checker``.
  :func:`export_onnx` is that one ``torch.onnx.export`` call, for a caller without an ``ExportSpec``
  (:func:`training.candidate.onnx_file`).
- :func:`load_version_weights`: a published version's weights into a torch module: its ``state_dict.pt`` where
  the version keeps one (every version this framework publishes), else the ONNX initializers, by name (they are
  the ``state_dict`` names) and, for the initializers the exporter renamed (``onnx::PRelu_116``: a PReLU slope
  after constant folding), by tracing the fresh module with every parameter set to its own index and matching
  the values. A weight that can be matched neither way (e.g. a batch norm folded into a convolution) is an error.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritonclient.grpc import model_config_pb2 as pb

from models.runtime.model_config import message_to_text
from training.framework.spec import ExportSpec, TaskError

if TYPE_CHECKING:
    import torch

LOGGER = logging.getLogger(__name__)

STATE_DICT_NAME = "state_dict.pt"


def config_text(spec: ExportSpec, instance_count: int = 1) -> str:
    """``config.pbtxt`` text of *spec*."""
    msg = pb.ModelConfig(name=spec.model, platform="onnxruntime_onnx", max_batch_size=spec.max_batch_size)
    for tensor in spec.inputs:
        msg.input.add(name=tensor.name, data_type=pb.DataType.Value(tensor.data_type), dims=list(tensor.dims))
    for tensor in spec.outputs:
        msg.output.add(name=tensor.name, data_type=pb.DataType.Value(tensor.data_type), dims=list(tensor.dims))
    msg.version_policy.latest.num_versions = 1
    msg.dynamic_batching.max_queue_delay_microseconds = 2000
    msg.dynamic_batching.preferred_batch_size.extend(spec.preferred_batch_sizes)
    msg.instance_group.add(count=instance_count, kind=pb.ModelInstanceGroup.KIND_AUTO)
    for key, value in spec.parameters.items():
        msg.parameters[key].string_value = value
    return message_to_text(msg)


def exported_module(module: torch.nn.Module, spec: ExportSpec) -> torch.nn.Module:
    """*module* with the spec's export head, in eval mode (what the ONNX file and validation both run)."""
    return (spec.head(module) if spec.head is not None else module).eval()


def _dynamic_axes(spec: ExportSpec) -> dict[str, dict[int, str]]:
    offset = 1 if spec.max_batch_size > 0 else 0
    axes: dict[str, dict[int, str]] = {}
    for tensor in (*spec.inputs, *spec.outputs):
        named = {0: "batch"} if offset else {}
        named.update({i + offset: f"{tensor.name}_{i}" for i, d in enumerate(tensor.dims) if d == -1})
        axes[tensor.name] = named
    return axes


def onnx_file(module: torch.nn.Module, spec: ExportSpec, path: Path,
              dynamic_axes: Mapping[str, Mapping[int, str]] | None = None) -> None:
    """Write *module* (through its export head, on the CPU) as ONNX to *path*; checked.

    *dynamic_axes*: tensor name -> {axis: symbol}, where a shipped model names its dynamic axes otherwise than
    :func:`_dynamic_axes` (``height``/``width`` shared by input and output); None: from the spec.
    """
    head = exported_module(module, spec).to("cpu")
    export_onnx(head, spec.example_shapes, path, [t.name for t in spec.inputs], [t.name for t in spec.outputs],
                _dynamic_axes(spec) if dynamic_axes is None else dynamic_axes, spec.opset)


def export_onnx(module: torch.nn.Module, example_shapes: Sequence[Sequence[int]], path: Path,
                input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: Mapping[str, Mapping[int, str]], opset: int = 17) -> None:
    """The one ``torch.onnx.export`` call of training: *module* (already in eval mode, on the CPU) traced on zero
    inputs of *example_shapes* by the TorchScript exporter (``dynamo=False``); checked with ``onnx.checker``."""
    import onnx
    import torch

    examples = tuple(torch.zeros(*shape) for shape in example_shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, examples, str(path), input_names=list(input_names),
                          output_names=list(output_names),
                          dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
                          opset_version=opset, dynamo=False)
    onnx.checker.check_model(str(path))


def save_state_dict(module: torch.nn.Module, path: Path) -> None:
    """The module's ``state_dict`` on the CPU (``torch.save``), what :func:`load_version_weights` reads first."""
    import torch

    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, path)


def _onnx_initializers(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _renamed(module: torch.nn.Module, spec: ExportSpec, scratch: Path) -> dict[str, str]:
    """ONNX initializer name -> ``state_dict`` key, for initializers the exporter named itself: the module is
    traced with parameter *k* set to the constant *k* + 1 and each such initializer identified by its value."""
    import copy

    import numpy as np
    import torch

    probe = copy.deepcopy(module).to("cpu")
    names = [k for k, _ in probe.named_parameters()]
    with torch.no_grad():
        for k, (_, p) in enumerate(probe.named_parameters()):
            p.fill_(float(k + 1))
    onnx_file(probe, spec, scratch)
    out: dict[str, str] = {}
    for name, value in _onnx_initializers(scratch).items():
        if not name.startswith("onnx::") or value.size == 0:
            continue
        first = float(value.flat[0])
        if first.is_integer() and 1 <= first <= len(names) and np.all(value == first):
            out[name] = names[int(first) - 1]
    scratch.unlink()
    return out


def _prefix(spec: ExportSpec, module: torch.nn.Module) -> str:
    """The name prefix the export head puts before the module's own names (``net.`` for a wrapper)."""
    head = exported_module(module, spec)
    for name, child in head.named_modules():
        if child is module:
            return f"{name}." if name else ""
    return ""


def load_version_weights(module: torch.nn.Module, version_dir: Path, spec: ExportSpec, scratch: Path) -> str:
    """Load the weights of the published version folder *version_dir* into *module*; returns where they came
    from (``state_dict.pt`` or ``model.onnx (N initializers, M by value)``).

    Raises:
        TaskError: no weights in the folder, or weights of another shape or architecture (names the first keys).
    """
    import torch

    state_path, onnx_path = version_dir / STATE_DICT_NAME, version_dir / "model.onnx"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        _load_strict(module, state, f"{version_dir.parent.name} {version_dir.name} {STATE_DICT_NAME}")
        return STATE_DICT_NAME
    if not onnx_path.is_file():
        raise TaskError(f"{version_dir.parent.name} version {version_dir.name}: no {STATE_DICT_NAME} and no model.onnx")
    initializers = _onnx_initializers(onnx_path)
    prefix = _prefix(spec, module)
    renamed = _renamed(module, spec, scratch)
    params = dict(module.named_parameters())
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    loaded, by_value, missing = 0, 0, []
    by_key = {v: k for k, v in renamed.items()}
    for key in params:
        onnx_name = prefix + key
        if onnx_name in initializers:
            value = initializers[onnx_name]
        elif key in by_key and by_key[key] in initializers:
            value, by_value = initializers[by_key[key]], by_value + 1
        else:
            missing.append(key)
            continue
        if value.size != params[key].numel():
            raise TaskError(f"{version_dir.parent.name} version {version_dir.name}: {key} has {value.size} values "
                            f"in the ONNX file, {params[key].numel()} in the network (another architecture?)")
        state[key] = torch.from_numpy(value.copy()).reshape(params[key].shape)
        loaded += 1
    if missing:
        raise TaskError(f"{version_dir.parent.name} version {version_dir.name}: {len(missing)} weight(s) not found "
                        f"in model.onnx (first: {', '.join(missing[:3])}); folded by the exporter or another "
                        f"architecture; fine-tune from a version published with {STATE_DICT_NAME}")
    module.load_state_dict(state)
    return f"model.onnx ({loaded} initializers, {by_value} matched by value)"


def _load_strict(module: torch.nn.Module, state: Mapping[str, Any], origin: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:2]
        raise TaskError(f"{origin}: does not fit the network ({' '.join(first)[:300]})") from None
