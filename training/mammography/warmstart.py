"""Start a training run from a published ``mammo_detector`` version (fine-tuning, ``from_version`` in the config).

A version published with ``state_dict.pt`` (version 2 on) is loaded by the framework's
:func:`training.framework.export.load_version_weights`. Version 1 keeps only ``model.onnx``, where the exporter
folded each convolution's batch norm into the convolution (``onnx::Conv_193`` = W·γ/σ, bias folded likewise), so
γ, β and the running statistics of those layers are gone. :func:`load_folded_onnx` undoes that:

1. the fresh network is exported with every batch norm the identity and every other parameter *k* set to the
   constant *k* + 10 (clear of the identity's 0 and 1); each ONNX initializer that is (within float rounding)
   such a constant names the parameter it came from;
2. the published file's initializers are loaded by those names (and by their own names where nothing was
   folded), with the folded batch norms set to the identity: the torch network then computes what the ONNX file
   computes;
3. each folded batch norm gets back statistics that keep it so: the mean and variance of its input over sample
   patches become its running statistics, β and γ (β = mean, γ = √(var + ε)), so training mode (batch
   statistics) starts where the published network is, not from a rescaled one.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.framework.export import STATE_DICT_NAME, load_version_weights, onnx_file
from training.framework.spec import ExportSpec, TaskError

LOGGER = logging.getLogger(__name__)

_RTOL = 1e-4
_OFFSET = 10


def _batch_norms(module: Any) -> dict[str, Any]:
    import torch

    return {name: m for name, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}


def _identity(norm: Any) -> None:
    import torch

    with torch.no_grad():
        norm.weight.fill_(1.0)
        norm.bias.zero_()
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)  # 1 / sqrt(var + eps) = 1


def _initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _folded_names(module: Any, spec: ExportSpec, scratch: Path) -> dict[str, str]:
    """ONNX initializer name -> parameter name, for every initializer that carries one parameter's values."""
    import torch

    probe = copy.deepcopy(module).to("cpu").eval()
    norms = {id(m) for m in _batch_norms(probe).values()}
    names = []
    with torch.no_grad():
        for mod in probe.modules():
            if id(mod) in norms:
                _identity(mod)
        for name, p in probe.named_parameters():
            names.append(name)
            p.fill_(float(len(names) + _OFFSET))
        for mod in probe.modules():  # batch norms stay the identity (their own parameters match nothing)
            if id(mod) in norms:
                _identity(mod)
    onnx_file(probe, spec, scratch)
    out: dict[str, str] = {}
    for name, value in _initializers(scratch).items():
        if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
            continue
        first = float(value.flat[0])
        k = int(round(first)) - _OFFSET
        if 1 <= k <= len(names) and np.allclose(value, k + _OFFSET, rtol=_RTOL, atol=0.0):
            out[name] = names[k - 1]
    scratch.unlink(missing_ok=True)
    return out


def load_folded_onnx(module: Any, onnx_path: Path, spec: ExportSpec, scratch: Path,
                     samples: Sequence[np.ndarray]) -> str:
    """Load the folded ONNX file *onnx_path* into *module* (see the module docstring); *samples*: (B, 1, P, P)
    float32 input batches for the batch-norm statistics. Returns a short account of what was loaded.

    Raises:
        TaskError: a parameter of *module* found nowhere in the file, or of another size.
    """
    import torch

    prefix = "net."  # the export head's name for the network
    folded = _folded_names(module, spec, scratch)
    by_param = {v: k for k, v in folded.items()}
    source = _initializers(onnx_path)
    state = module.state_dict()
    norms = _batch_norms(module)
    owner = {f"{n}.{p}": n for n in norms for p in ("weight", "bias")}
    loaded, identity = 0, set()
    for key in dict(module.named_parameters()):
        value = source.get(by_param.get(key, ""), source.get(prefix + key))
        if value is None and key in owner:
            identity.add(owner[key])  # folded into its convolution
            continue
        if value is None or value.size != state[key].numel():
            raise TaskError(f"{onnx_path}: {key} not found or of another size (another architecture?)")
        state[key] = torch.from_numpy(value.copy()).reshape(state[key].shape)
        loaded += 1
    for name in norms:
        for buffer in ("running_mean", "running_var"):
            if f"{prefix}{name}.{buffer}" in source:
                state[f"{name}.{buffer}"] = torch.from_numpy(source[f"{prefix}{name}.{buffer}"].copy())
    module.load_state_dict(state)
    for name in identity:
        _identity(norms[name])
    _restore_statistics(module, {name: norms[name] for name in identity}, samples)
    return f"{onnx_path.parent.name}/{onnx_path.name} ({loaded} tensors, {len(identity)} folded batch norms restored)"


def _restore_statistics(module: Any, norms: dict[str, Any], samples: Sequence[np.ndarray]) -> None:
    import torch

    sums: dict[str, list[Any]] = {name: [] for name in norms}

    def hook(name: str) -> Any:
        def record(_: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].detach().double()
            sums[name].append((x.mean(dim=(0, 2, 3)), (x * x).mean(dim=(0, 2, 3))))
        return record

    handles = [norm.register_forward_pre_hook(hook(name)) for name, norm in norms.items()]
    module.eval()
    try:
        with torch.no_grad():
            for batch in samples:
                module(torch.from_numpy(batch))
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for name, norm in norms.items():
            mean = torch.stack([m for m, _ in sums[name]]).mean(0)
            var = (torch.stack([s for _, s in sums[name]]).mean(0) - mean**2).clamp(min=1e-6)
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_(var.float())
            norm.bias.copy_(mean.float())
            norm.weight.copy_(torch.sqrt(var + norm.eps).float())


def load_version(module: Any, version_dir: Path, spec: ExportSpec, scratch: Path,
                 samples: Sequence[np.ndarray]) -> str:
    """Weights of the published version folder *version_dir* into *module*: its ``state_dict.pt`` when it has
    one, else its folded ``model.onnx`` (:func:`load_folded_onnx`).

    Raises:
        TaskError: no weights there, or weights of another architecture.
    """
    if (version_dir / STATE_DICT_NAME).is_file():
        return load_version_weights(module, version_dir, spec, scratch)
    if not (version_dir / "model.onnx").is_file():
        raise TaskError(f"{version_dir}: no {STATE_DICT_NAME} and no model.onnx")
    return load_folded_onnx(module, version_dir / "model.onnx", spec, scratch, samples)
