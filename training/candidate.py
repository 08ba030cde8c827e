"""What every task's training run shares: its JSON config (hashed into the model card), the ONNX
candidate it leaves in ``RUN/export/<model>/1/``, and the evaluation of that candidate through ONNX
Runtime exactly as the service runs it (``RUN/evaluation.json``, picked up by ``aiws export``).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import numpy as np

from models.runtime.repository import MODEL_FILENAME
from training.publish import publish_version

CANDIDATE_DIR = "export"
EVALUATION_JSON = "evaluation.json"

Predict = Callable[[np.ndarray], np.ndarray]


class JsonConfig:
    """Mixin for a frozen dataclass of hyper-parameters read from a JSON file (unknown keys are an error)."""

    @classmethod
    def from_file(cls, path: Path) -> Self:
        """Read a JSON config; lists become tuples.

        Raises:
            ValueError: unknown keys or malformed JSON, naming the file.
        """
        raw = json.loads(path.read_text())
        unknown = set(raw) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)  # type: ignore[call-overload]

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainResult:
    """A finished run: its folder, best checkpoint, validation metrics of that checkpoint, wall seconds."""

    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    seconds: float


def torch_predict(net: Any) -> Predict:
    """A numpy -> numpy callable around a torch network in eval mode (float32 in, logits out)."""
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return predict


@dataclass(frozen=True)
class OnnxSignature:
    """A network's ONNX tensors: names, an example input shape, and the dynamic axes of input and output."""

    model: str
    input_name: str
    output_name: str
    example_shape: tuple[int, ...]
    input_axes: Mapping[int, str]
    output_axes: Mapping[int, str]


def onnx_file(network: Any, path: Path, signature: OnnxSignature, opset: int = 17) -> None:
    """Write *network* (torch, eval mode) as ONNX with *signature*'s tensor names and dynamic axes; checked
    (the training framework's one exporter, :func:`training.framework.export.export_onnx`)."""
    from training.framework.export import export_onnx

    export_onnx(network.eval(), (signature.example_shape,), path, (signature.input_name,), (signature.output_name,),
                {signature.input_name: signature.input_axes, signature.output_name: signature.output_axes}, opset)


def write_candidate(run_dir: Path, network: Any, signature: OnnxSignature, config_text: str,
                    card: Mapping[str, Any]) -> Path:
    """Export *network* into ``RUN/export/<model>/1/`` (replacing an earlier candidate); returns the ONNX path."""
    root = run_dir / CANDIDATE_DIR
    if root.exists():
        shutil.rmtree(root)
    tmp = run_dir / "model.onnx.tmp"
    onnx_file(network, tmp, signature)
    publish_version(root, signature.model, tmp, config_text, card, version=1)
    tmp.unlink()
    return root / signature.model / "1" / MODEL_FILENAME


def has_candidate(run_dir: Path, model: str) -> bool:
    return (run_dir / CANDIDATE_DIR / model).is_dir()


class Metrics(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


M = TypeVar("M", bound=Metrics)


def evaluate_candidate(run_dir: Path, task: str, signature: OnnxSignature, seeds: Iterable[int],
                       evaluate: Callable[[Sequence[int], Predict], M]) -> M:
    """Run ``evaluate(seeds, predict)`` with the run's ONNX candidate through ONNX Runtime (as the service
    runs it) and write ``RUN/evaluation.json``.

    Raises:
        ModelNotFound: the run has no exported candidate.
    """
    from models.runtime import RuntimeSettings, make_runtime

    seeds = list(seeds)
    with make_runtime(RuntimeSettings(model_repository=run_dir / CANDIDATE_DIR, device="cpu")) as runtime:
        def predict(x: np.ndarray) -> np.ndarray:
            return runtime.infer(signature.model, {signature.input_name: x}).outputs[signature.output_name]

        metrics = evaluate(seeds, predict)
    report = {"task": task, "seeds": [seeds[0], seeds[-1] + 1] if seeds else [], "runtime": "onnxruntime",
              **metrics.as_dict()}
    (run_dir / EVALUATION_JSON).write_text(json.dumps(report, indent=2))
    return metrics


def bar_lines(bars: Iterable[tuple[str, str, bool]]) -> list[str]:
    """``MET``/``FAIL`` lines for (quality bar, measured value, met)."""
    return [f"  {'MET ' if ok else 'FAIL'} {name}: {value}" for name, value, ok in bars]
