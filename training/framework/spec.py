"""The task interface of the training framework: one :class:`TaskSpec` per imaging task, one registry.

A task says WHAT is learnt (which cases it takes, how a case becomes training samples, the network, the loss,
how a case is scored, the exported tensors); the framework (:mod:`training.framework.loop`) does HOW: config,
device, mixed precision, optimizer and schedule, validation split and best checkpoint, k-fold, bootstrap
intervals, plots, TensorBoard, the run folder, ONNX + ``config.pbtxt`` export, fine-tuning from a shipped
version. A task never writes a training loop, a config loader or an exporter of its own.

Implementing a task (``training/<task>/task.py``, module attribute ``TASK``)::

    @dataclass(frozen=True)
    class Options:                      # the [options] table of the TOML config; every field has a default
        patch: tuple[int, int] = (128, 128)
        channels: tuple[int, ...] = (16, 32, 64, 128)

    def samples(cases, config, rng):    # -> torch Dataset of dicts {"image": C x spatial float tensor, targets...}
        items = [{"image": ..., "label": ...} for case in cases]    # numpy arrays from Case values
        return cached_dataset(items, deterministic, augmentation, config, seed=int(rng.integers(2**31)))

    TASK = TaskSpec(name="cardiac_mri", model="cardiac_cine_segmenter", formats=("dicom-seg", "acdc", "mnms"),
                    default_config=Path(__file__).parent / "configs" / "framework.toml", options=Options,
                    samples=samples, network=..., loss=..., evaluate=..., summarise=...,
                    monitor=Metric("dice_mean"), export=...)

Contracts (the loop relies on each):

- ``samples(cases, config, rng)`` -> ``torch.utils.data.Dataset``; each item a dict with ``"image"`` (the network
  input, float32 tensor ``C x spatial``, no batch axis) and the targets the loss reads (tensors). Random
  augmentation (MONAI ``Rand*`` transforms) goes here, seeded from *rng*; put the deterministic transforms first
  so :func:`training.framework.data.cached_dataset` caches their output (``train.cache_rate``). Cases come from
  :func:`training.readers.read_dataset` (already filtered by :attr:`TaskSpec.usable`). Item shapes must stack
  (crop or pad to a fixed patch).
- *config* is a :class:`training.framework.config.RunConfig`: ``config.train`` the loop's settings,
  ``config.options`` an instance of :attr:`TaskSpec.options` (the TOML ``[options]`` table), ``config.seed``.
- ``network(config)`` -> ``torch.nn.Module``: ``module(batch["image"])`` returns what ``loss`` takes (logits).
- ``loss(config)`` -> ``fn(output, batch) -> scalar tensor``; *batch* is the collated dict, on the device.
- ``export(config)`` -> :class:`ExportSpec`: the repository model name, tensor names/dims/types, the head that
  turns the trained module into the exported graph (e.g. softmax channel), ``config.pbtxt`` parameters. The
  shipped models' tensor names and ``config.pbtxt`` must stay identical, or publishing refuses the new version.
- ``evaluate(predict, cases, config)`` -> one JSON-able record per case (``{"case_id": ..., metric: float, ...}``,
  NaN where a metric is undefined for that case; raw values a curve needs, e.g. candidate scores for FROC or
  true/predicted EF for Bland–Altman, may be lists or floats under their own keys). *predict* maps
  ``{input name: batch array}`` to ``{output name: batch array}`` exactly as the EXPORTED model does (the export
  head applied): during training it runs the torch module, in ``aiws evaluate --version N`` ONNX Runtime. So an
  evaluation on the hospital's cases measures what the service will run.
- ``summarise(records)`` -> ``{metric: float}``: the reported statistics over a set of cases (default
  :func:`mean_of_records`: the mean of every float field). The framework bootstraps it (resampling records,
  seeded, percentile 95 % interval), so it must accept any multiset of records and may return NaN.
- ``monitor``: the key of ``summarise`` that picks the best checkpoint and drives early stopping.
- ``plots(records, folder)`` -> PNG paths written (FROC, Bland–Altman, confusion matrix: use
  :mod:`training.framework.plots`); they land in ``RUN/evaluation/`` and in the model card.
- ``fit_operating_point(records, config)`` (optional) -> values fitted on the validation records (e.g. a score
  threshold); stored in ``metrics.json`` and the card's ``operating_point``.
- ``encoder(name)`` -> True for the ``state_dict`` keys that ``--freeze-encoder`` freezes (default: the
  contracting path of a MONAI ``UNet``, :func:`unet_encoder`).
- ``group(case)`` -> the key that keeps cases together in the validation split and the folds (default: the case
  id; the cardiac task groups a patient's ED and ES frames, so no patient is on both sides).
- ``usable(case)`` -> None, or the reason this task cannot learn from a case that the reader accepted (e.g. no
  label map, a 2D image given to a 3D task); such a case is listed in ``skipped.json`` with the reason.

Registry: :data:`TASKS` maps the ``aiws train`` task name to the module holding ``TASK``; :func:`get_task`
imports it when used (the CLI builds its parser without importing torch).
"""
from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.readers.case import Case

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from training.framework.config import RunConfig

#: One batch in, one batch out, keyed by tensor name (the exported model's contract).
Predict = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
#: One case's evaluation values (JSON-able): ``case_id``, float metrics, and raw values for curves.
Record = Mapping[str, Any]
LossFn = Callable[["torch.Tensor", Mapping[str, "torch.Tensor"]], "torch.Tensor"]

#: ``config.pbtxt`` data types the exporter knows (ONNX element types follow from them).
DATA_TYPES = ("TYPE_FP32", "TYPE_FP16", "TYPE_INT64", "TYPE_INT32", "TYPE_UINT8", "TYPE_BOOL")


class TaskError(Exception):
    """A task that is not registered or is misdeclared, or a dataset a task cannot learn from."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the exported model.

    *dims*: per item, without the batch axis, as in ``config.pbtxt`` (-1: any size; that axis is dynamic in the
    ONNX graph too). *data_type*: one of :data:`DATA_TYPES`.
    """

    name: str
    dims: tuple[int, ...]
    data_type: str = "TYPE_FP32"

    def __post_init__(self) -> None:
        if self.data_type not in DATA_TYPES:
            raise TaskError(f"tensor {self.name}: data type {self.data_type!r} is not one of {', '.join(DATA_TYPES)}")
        if any(d == 0 or d < -1 for d in self.dims):
            raise TaskError(f"tensor {self.name}: dims {list(self.dims)} must be positive or -1")


@dataclass(frozen=True)
class ExportSpec:
    """What :mod:`training.framework.export` writes: ONNX graph and ``config.pbtxt`` of model *model*.

    *example_shapes*: one concrete input shape per input, batch axis included, used to trace the graph (dynamic
    axes: the batch axis when *max_batch_size* > 0, and every -1 of *dims*). *head*: wraps the trained module
    into the exported one (None: exported as trained). *parameters*: ``config.pbtxt`` string parameters.
    *preferred_batch_sizes*: dynamic batching's preferred sizes (empty: none declared).
    """

    model: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    example_shapes: tuple[tuple[int, ...], ...]
    max_batch_size: int
    parameters: Mapping[str, str] = field(default_factory=dict)
    head: Callable[[torch.nn.Module], torch.nn.Module] | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    opset: int = 17

    def __post_init__(self) -> None:
        if len(self.example_shapes) != len(self.inputs):
            raise TaskError(f"model {self.model}: {len(self.example_shapes)} example shape(s) for "
                            f"{len(self.inputs)} input(s)")
        offset = 1 if self.max_batch_size > 0 else 0
        for tensor, shape in zip(self.inputs, self.example_shapes, strict=True):
            dims = shape[offset:]
            if len(dims) != len(tensor.dims) or any(d != -1 and d != s for d, s in zip(tensor.dims, dims, strict=True)):
                raise TaskError(f"model {self.model}: example shape {list(shape)} does not fit input "
                                f"{tensor.name} dims {list(tensor.dims)}")


@dataclass(frozen=True)
class Metric:
    """The monitored validation metric: a key of ``summarise``'s result, and whether higher is better."""

    name: str
    higher_is_better: bool = True

    def better(self, value: float, best: float | None) -> bool:
        """True when *value* improves on *best* (None: nothing yet); NaN never improves."""
        if math.isnan(value):
            return False
        if best is None or math.isnan(best):
            return True
        return value > best if self.higher_is_better else value < best


def mean_of_records(records: Sequence[Record]) -> dict[str, float]:
    """The mean of every float/int field over *records*, NaN ignored (NaN where no case has a value)."""
    keys = sorted({k for r in records for k, v in r.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([float(r[key]) for r in records if isinstance(r.get(key), (int, float))], dtype=float)
        values = values[~np.isnan(values)]
        out[key] = float(values.mean()) if values.size else math.nan
    return out


_UNET_ENCODER = re.compile(r"^model\.(?:1\.submodule\.)*(?:0\.|(?!\d))")


def unet_encoder(name: str) -> bool:
    """True for a MONAI ``UNet`` ``state_dict`` key on the contracting path (down blocks and the bottom block):
    ``model.0.*``, ``model.1.submodule.0.*``, ..., the innermost ``...submodule.conv.*``/``residual.*``."""
    return bool(_UNET_ENCODER.match(name))


def _no_plots(records: Sequence[Record], folder: Path) -> list[Path]:
    return []


def _always_usable(case: Case) -> str | None:
    return None


def _case_id(case: Case) -> str:
    return case.case_id


@dataclass(frozen=True)
class TaskSpec:
    """One imaging task as the framework trains, evaluates and exports it (see the module docstring for every
    contract). *name*: the ``aiws train`` name; *model*: the model name in the repository; *formats*: the
    :data:`training.readers.FORMATS` keys it learns from; *default_config*: a TOML file with every key;
    *options*: the frozen dataclass of the ``[options]`` table; *card*: model-card text (``summary``,
    ``intended_use``, ``limitations``, ``conventions``) copied into every version it publishes."""

    name: str
    model: str
    formats: tuple[str, ...]
    default_config: Path
    options: type
    samples: Callable[[Sequence[Case], RunConfig, np.random.Generator], Dataset[Any]]
    network: Callable[[RunConfig], torch.nn.Module]
    loss: Callable[[RunConfig], LossFn]
    evaluate: Callable[[Predict, Sequence[Case], RunConfig], list[dict[str, Any]]]
    monitor: Metric
    export: Callable[[RunConfig], ExportSpec]
    summarise: Callable[[Sequence[Record]], dict[str, float]] = mean_of_records
    plots: Callable[[Sequence[Record], Path], list[Path]] = _no_plots
    fit_operating_point: Callable[[Sequence[Record], RunConfig], dict[str, Any]] | None = None
    encoder: Callable[[str], bool] = unet_encoder
    usable: Callable[[Case], str | None] = _always_usable
    group: Callable[[Case], str] = _case_id
    card: Mapping[str, Any] = field(default_factory=dict)

    def check_format(self, fmt: str) -> None:
        """Raises TaskError when this task does not learn from dataset format *fmt*."""
        if fmt not in self.formats:
            raise TaskError(f"--format {fmt}: the {self.name} task learns from {', '.join(self.formats)}")


#: ``aiws train`` task name -> module with the ``TASK`` attribute, imported when used.
TASKS: dict[str, str] = {
    "lung_nodules": "training.lung_nodules.task",
    "cardiac_mri": "training.cardiac_mri.task",
    "coronary_ct": "training.coronary_ct.task",
    "mammography": "training.mammography.task",
}


def get_task(name: str) -> TaskSpec:
    """The registered :class:`TaskSpec` *name*.

    Raises:
        TaskError: *name* is not in :data:`TASKS`, or its module has no ``TASK`` of the right type or name.
    """
    if name not in TASKS:
        raise TaskError(f"task {name!r} is not one of {', '.join(TASKS)}")
    try:
        module = importlib.import_module(TASKS[name])
    except ModuleNotFoundError as exc:
        raise TaskError(f"task {name}: module {TASKS[name]} is not available ({exc.name})") from None
    task = getattr(module, "TASK", None)
    if not isinstance(task, TaskSpec) or task.name != name:
        raise TaskError(f"task {name}: {TASKS[name]}.TASK is not a TaskSpec named {name!r}")
    return task
