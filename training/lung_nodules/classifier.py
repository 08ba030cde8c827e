"""The candidate classifier's run: ``aiws train lung_nodule_classifier --data DIR [--config FILE]``.

A run folder like the network's: ``config.json`` (validated configuration and its hash),
``train.log``, ``metrics.jsonl``, ``learning_curves.png``, ``checkpoints/{last,best}.pt``,
``run.json`` (seeds, best step, validation) and ``export/lung_nodule_classifier/1/`` (ONNX,
``config.pbtxt``, model card), which ``aiws evaluate RUN --data DIR`` runs through ONNX Runtime on
unseen cases and ``aiws export RUN`` publishes as the next version. A lung_nodules run takes it with
``aiws rescore RUN --data TUNE --classifier CLASSIFIER_RUN`` (or a published version). With
``--candidates-from VERSION|RUN`` the candidates of that lung network join the training points
(hard negatives of the detector the classifier will serve; ``classifier_data.py``).

Training: balanced batches of patches (``classifier_data.py``), binary cross-entropy, AdamW with
warm-up and cosine decay; the checkpoint with the best validation AUC (held-out cases) is exported.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from tritonclient.grpc import model_config_pb2 as pb

from models.lung_nodules.classifier import CHANNELS, INPUT_NAME, MODEL_NAME, OUTPUT_NAME
from models.lung_nodules.network import build_classifier
from models.lung_nodules.preprocess import InputSpec
from models.runtime.model_config import message_to_text
from models.runtime.ort import OnnxRuntime
from models.runtime.repository import ModelRepository
from training.candidate import OnnxSignature, write_candidate
from training.curves import plot_learning_curves
from training.lung_nodules.classifier_data import (
    Candidates,
    Patches,
    SamplingSettings,
    batch,
    dataset_patches,
    network_candidates,
)
from training.lung_nodules.config import TrainConfigError, build_config, read_mapping
from training.lung_nodules.dataset import dataset_seeds
from training.lung_nodules.export import CANDIDATE_DIR, run_model
from training.lung_nodules.train import log_to_run, warmup_cosine_lr
from training.msd import case_names

LOGGER = logging.getLogger(__name__)

CURVES = (("val AUC", "o-", lambda v: v.get("auc") or 0.0),
          ("val sensitivity at 99 % specificity", "s-", lambda v: v.get("sensitivity_at_99_specificity") or 0.0))


@dataclass(frozen=True)
class ClassifierNetwork:
    channels: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.2


@dataclass(frozen=True)
class ClassifierTrain:
    iterations: int = 3000
    batch_size: int = 32
    positive_fraction: float = 0.5
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_every: int = 500
    val_cases: int = 4
    threads: int = 2
    log_every: int = 50


@dataclass(frozen=True)
class ClassifierExport:
    model_name: str = MODEL_NAME
    max_batch_size: int = 32
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_window: tuple[float, float] = (-1000.0, 400.0)


@dataclass(frozen=True)
class ClassifierConfig:
    """One classifier run: network, sampling (``[data]``), training and export settings."""

    task: str = MODEL_NAME
    seed: int = 0
    network: ClassifierNetwork = ClassifierNetwork()
    data: SamplingSettings = SamplingSettings()
    train: ClassifierTrain = ClassifierTrain()
    export: ClassifierExport = ClassifierExport()
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(json.loads(json.dumps(asdict(self))))

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys) of the validated configuration."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def classifier_config(raw: dict[str, Any], origin: str = "configuration") -> ClassifierConfig:
    """Validate a parsed TOML/JSON mapping.

    Raises:
        TrainConfigError: unknown keys or invalid values, naming the section.
    """
    sections = {"network": ClassifierNetwork, "data": SamplingSettings, "train": ClassifierTrain,
                "export": ClassifierExport}
    config = build_config(ClassifierConfig, sections, raw, origin)
    if config.task != MODEL_NAME:
        raise TrainConfigError(f"{origin}: task {config.task!r}: this trainer handles {MODEL_NAME!r}")
    div = 2 ** (len(config.network.channels) - 1)
    if config.data.patch % div:
        raise TrainConfigError(f"{origin}: data.patch {config.data.patch} must be a multiple of {div}")
    if config.train.iterations < 1 or config.train.batch_size < 2:
        raise TrainConfigError(f"{origin}: train.iterations must be >= 1 and train.batch_size >= 2")
    return config


def load_classifier_config(path: Path | None) -> ClassifierConfig:
    """The configuration in *path* (TOML or JSON), or the defaults when None.

    Raises:
        TrainConfigError: unreadable, bad syntax or invalid values.
    """
    return ClassifierConfig() if path is None else classifier_config(read_mapping(path), str(path))


def config_text(settings: ClassifierExport, patch: int) -> str:
    """``config.pbtxt`` of the classifier: every version served (a lung_nodules version names the one it
    uses), dynamic batching, the network grid's ``spacing_mm`` and ``hu_window``."""
    msg = pb.ModelConfig(name=settings.model_name, platform="onnxruntime_onnx", max_batch_size=settings.max_batch_size)
    msg.input.add(name=INPUT_NAME, data_type=pb.TYPE_FP32, dims=[CHANNELS, patch, patch, patch])
    msg.output.add(name=OUTPUT_NAME, data_type=pb.TYPE_FP32, dims=[1])
    msg.version_policy.all.SetInParent()
    msg.dynamic_batching.max_queue_delay_microseconds = 2000
    msg.instance_group.add(count=1, kind=pb.ModelInstanceGroup.KIND_AUTO)
    msg.parameters["spacing_mm"].string_value = ",".join(f"{v:g}" for v in settings.spacing_mm)
    msg.parameters["hu_window"].string_value = ",".join(f"{v:g}" for v in settings.hu_window)
    return message_to_text(msg)


@dataclass(frozen=True)
class NetworkSource:
    """The lung network whose candidates join the classifier's points: *model* *version* in *repository*."""

    repository: Path
    model: str
    version: int

    @classmethod
    def parse(cls, value: str, repo_root: Path) -> NetworkSource:
        """A published version of lung_nodules in *repo_root* (``0``: the latest) or a lung run folder.

        Raises:
            FileNotFoundError: neither; ModelNotFound: no such version.
        """
        if value.isdigit():
            version = ModelRepository(repo_root).resolve_version("lung_nodules", int(value) or None)
            return cls(repo_root.resolve(), "lung_nodules", version)
        run = Path(value)
        if not (run / "run.json").is_file() or is_classifier_run(run):
            raise FileNotFoundError(f"{run}: not a lung_nodules run (no run.json) nor a version number")
        model = run_model(run)
        repo = ModelRepository(run / CANDIDATE_DIR)
        return cls(repo.root.resolve(), model, repo.resolve_version(model))

    def to_mapping(self) -> dict[str, Any]:
        return {"repository": str(self.repository), "model": self.model, "version": self.version}

    def candidates(self, spec: InputSpec, threads: int) -> Candidates:
        """The network's candidates, run through ONNX Runtime.

        Raises:
            ModelError: the network sees another grid or window than *spec*.
        """
        runtime = OnnxRuntime(ModelRepository(self.repository), device="cpu", intra_op_threads=threads)
        return network_candidates(runtime, self.model, self.version, spec)


def patch_metrics(logits: np.ndarray, patches: Patches) -> dict[str, Any]:
    """AUC, and sensitivity at the logits that keep 95 % and 99 % of the negatives below (per nodule kind too)."""
    y = patches.positive
    pos, neg = logits[y], logits[~y]
    if not len(pos) or not len(neg):
        return {"points": len(y), "positives": len(pos), "auc": None}
    auc = roc_auc_score(y, logits)
    out: dict[str, Any] = {"points": len(y), "positives": len(pos), "auc": round(float(auc), 4)}
    cuts = {spec: float(np.quantile(neg, spec / 100.0)) for spec in (95, 99)}
    for spec, cut in cuts.items():
        out[f"sensitivity_at_{spec}_specificity"] = round(float((pos > cut).mean()), 4)
    cut = cuts[99]
    kinds = np.array(patches.kind)
    out["by_kind_at_99_specificity"] = {k: round(float((logits[y & (kinds == k)] > cut).mean()), 4)
                                        for k in sorted(set(kinds[y]))}
    return out


def _predict(network: Any, patches: Patches, settings: SamplingSettings, size: int = 64) -> np.ndarray:
    import torch

    network.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(patches), size):
            x = batch(patches, range(i, min(i + size, len(patches))), settings, None)
            out.append(network(torch.from_numpy(x)).numpy().reshape(-1))
    network.train()
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _split(data_dir: Path, config: ClassifierConfig) -> tuple[list[str], list[str]]:
    names = case_names(data_dir)
    order = np.random.default_rng(config.seed).permutation(len(names))
    n_val = min(config.train.val_cases, max(len(names) - 1, 0))
    val = {names[i] for i in order[len(names) - n_val:]}
    return [n for n in names if n not in val], [n for n in names if n in val]


def train_classifier(config: ClassifierConfig, data_dir: Path, run_dir: Path, progress: bool = True,
                     source: NetworkSource | None = None) -> dict[str, Any]:
    """Train on *data_dir* (MSD layout; with *source*'s candidates among the points), keep the best validation
    AUC, export the candidate; returns run.json.

    Raises:
        TrainConfigError: no nodule among the training points. ModelError: *source* sees another grid.
    """
    import torch

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    handler = log_to_run(run_dir)
    try:
        torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.seed)
        (run_dir / "config.json").write_text(json.dumps({"sha256": config.config_hash(), **config.to_dict()},
                                                        indent=2), encoding="utf-8")
        t0 = time.perf_counter()
        spec = InputSpec(config.export.spacing_mm, config.export.hu_window)
        train_names, val_names = _split(data_dir, config)
        candidates = source.candidates(spec, config.train.threads) if source is not None else None
        train = dataset_patches(data_dir, train_names, spec, config.data, config.seed, candidates)
        val = dataset_patches(data_dir, val_names, spec, config.data, config.seed + 1, candidates)
        if not train.positive.any() or train.positive.all():
            raise TrainConfigError(f"{data_dir}: {int(train.positive.sum())} of {len(train)} training points on "
                                   f"nodules; need nodules and other points")
        LOGGER.info("classifier data %s: %d training points (%d on nodules), %d validation points", data_dir,
                    len(train), int(train.positive.sum()), len(val))
        network = build_classifier(config.network.channels, CHANNELS, config.network.dropout)
        best = _fit(network, config, train, val, run_dir, progress)
        state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
        network.load_state_dict(state["state_dict"])
        seconds = time.perf_counter() - t0
        trained_on = {"dataset": data_dir.name, "cases": train_names, "validation_cases": val_names,
                      "phantom_seeds": dataset_seeds(data_dir), "points": len(train),
                      "points_on_nodules": int(train.positive.sum()), "iterations": config.train.iterations,
                      "best_step": best[1], "seconds": round(seconds, 1),
                      "candidates_from": {"model": source.model, "version": source.version} if source else None}
        card = classifier_card(config, trained_on, state["validation"])
        signature = OnnxSignature(config.export.model_name, INPUT_NAME, OUTPUT_NAME,
                                  (1, CHANNELS, *(config.data.patch,) * 3), {0: "batch"}, {0: "batch"})
        onnx_path = write_candidate(run_dir, network.eval(), signature, config_text(config.export, config.data.patch),
                                    card)
        result = {"run": run_dir.name, "model": config.export.model_name, "config_sha256": config.config_hash(),
                  "best_step": best[1], "validation": state["validation"], "onnx": str(onnx_path),
                  "seconds": round(seconds, 1), "training_seeds": dataset_seeds(data_dir),
                  "candidates_from": source.to_mapping() if source else None}
        (run_dir / "run.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        return result
    finally:
        logging.getLogger("training").removeHandler(handler)
        handler.close()


def _fit(network: Any, config: ClassifierConfig, train: Patches, val: Patches, run_dir: Path, progress: bool
         ) -> tuple[float, int]:
    """The training loop; returns (best validation AUC, its step) with ``checkpoints/best.pt`` written."""
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(config.seed + 2)
    positives, negatives = np.flatnonzero(train.positive), np.flatnonzero(~train.positive)
    n_pos = max(1, round(config.train.batch_size * config.train.positive_fraction))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history: list[dict[str, Any]] = []
    best: tuple[float, int] = (-1.0, 0)
    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.write_text("", encoding="utf-8")
    running: list[float] = []
    t0 = time.perf_counter()
    for step in tqdm(range(config.train.iterations), desc="train lung_nodule_classifier", disable=not progress,
                     mininterval=5):
        for group in optimiser.param_groups:
            group["lr"] = warmup_cosine_lr(step, config.train.iterations, config.train.lr)
        index = np.r_[rng.choice(positives, n_pos), rng.choice(negatives, config.train.batch_size - n_pos)]
        x = torch.from_numpy(batch(train, index, config.data, rng))
        y = torch.from_numpy(train.positive[index].astype(np.float32))[:, None]
        optimiser.zero_grad()
        loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()
        running.append(float(loss.detach()))
        rows = []
        if (step + 1) % config.train.log_every == 0:
            rows.append({"step": step + 1, "loss": float(np.mean(running)),
                         "seconds": round(time.perf_counter() - t0, 1)})
            running = []
        if (step + 1) % config.train.val_every == 0 or step + 1 == config.train.iterations:
            summary = patch_metrics(_predict(network, val, config.data), val) if len(val) else {"auc": None}
            rows.append({"step": step + 1, "validation": summary})
            state = {"state_dict": network.state_dict(), "config": config.to_dict(), "step": step + 1,
                     "validation": summary}
            torch.save(state, run_dir / "checkpoints" / "last.pt")
            LOGGER.info("step %d: validation AUC %s", step + 1, summary.get("auc"))
            if (summary.get("auc") or 0.0) > best[0] or best[1] == 0:
                torch.save(state, run_dir / "checkpoints" / "best.pt")
                best = (summary.get("auc") or 0.0, step + 1)
        if rows:
            history += rows
            with metrics_path.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)
            if any("validation" in r for r in rows):
                plot_learning_curves(history, run_dir / "learning_curves.png", CURVES, "train loss (BCE)")
    return best


INTENDED_USE = ("Second stage of the lung_nodules detector: scores a candidate of the segmentation network (or of "
                "the dot filter) from the CT around it; its logit is one feature of that version's logistic second "
                "stage. Not used on its own.")
LIMITATIONS = [
    "Trained on synthetic phantoms only (ellipsoid nodules, tube vessels and airways, smooth pleura); what it "
    "learned of vessels, airway walls and the pleura is the phantoms'. Retrain it (aiws train "
    "lung_nodule_classifier) on local data before trusting it on patient CT.",
    "Sees 32 mm around the candidate at 1 mm and 64 mm at 2 mm: a nodule larger than about 30 mm fills the fine "
    "cube.",
]


def classifier_card(config: ClassifierConfig, trained_on: dict[str, Any], validation: dict[str, Any]
                    ) -> dict[str, Any]:
    """The model card of a freshly trained classifier (``aiws evaluate`` adds its figures at export)."""
    import datetime as dt

    p = config.data.patch
    return {
        "model": config.export.model_name, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": f"3D CNN candidate classifier (widths "
                   f"{list(config.network.channels)}): the CT around a lung-nodule candidate, {p} voxels a side at the "
                   f"network spacing and {p} at twice it, to a nodule logit.",
        "intended_use": INTENDED_USE, "trained_on": trained_on, "metrics": {"validation": validation},
        "conventions": [f"Input {INPUT_NAME} [N, 2, {p}, {p}, {p}]: HU windowed to {list(config.export.hu_window)} "
                        f"and scaled to [0, 1] on the {list(config.export.spacing_mm)} mm grid; channel 1 averages "
                        "2 x 2 x 2 blocks. Output nodule_logit [N, 1].",
                        "Positives: nodule centres; negatives: dot-filter peaks, lung tissue and lung surface"
                        + (", and the candidates of the network named in trained_on.candidates_from"
                           if trained_on.get("candidates_from") else "")
                        + " (training/lung_nodules/classifier_data.py)."],
        "limitations": LIMITATIONS,
        "provenance": {"training_config_sha256": config.config_hash(), "training_config": config.to_dict()},
    }


class ClassifierEvaluationError(ValueError):
    """The classifier evaluation cannot be run as asked (no candidate, seeds shared with training)."""


def is_classifier_run(run_dir: Path) -> bool:
    path = run_dir / "run.json"
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("model") == MODEL_NAME


def evaluate_classifier(run_dir: Path, data_dir: Path, threads: int = 0) -> dict[str, Any]:
    """Patch metrics of the run's exported classifier through ONNX Runtime on *data_dir* (unseen seeds); written
    to ``RUN/evaluation.json``.

    Raises:
        ClassifierEvaluationError: no exported candidate, or seeds shared with the training data.
    """
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    repo = ModelRepository(run_dir / CANDIDATE_DIR)
    if MODEL_NAME not in repo.models():
        raise ClassifierEvaluationError(f"{run_dir}: no exported {MODEL_NAME} in {repo.root} (train first)")
    seeds = dataset_seeds(data_dir)
    shared = sorted(set(seeds) & set(run.get("training_seeds", [])))
    if shared:
        raise ClassifierEvaluationError(f"{data_dir}: phantom seeds {shared[:10]} were used to train {run_dir.name}; "
                                        f"evaluate on unseen seeds")
    config = classifier_config(_stored_config(run_dir), str(run_dir / "config.json"))
    spec = InputSpec(config.export.spacing_mm, config.export.hu_window)
    source = _source_of(run)
    candidates = source.candidates(spec, threads or config.train.threads) if source is not None else None
    patches = dataset_patches(data_dir, case_names(data_dir), spec, config.data, config.seed + 3, candidates)
    runtime = OnnxRuntime(repo, device="cpu", intra_op_threads=threads)
    logits = [runtime.infer(MODEL_NAME, {INPUT_NAME: batch(patches, range(i, min(i + 64, len(patches))),
                                                            config.data, None)}).outputs[OUTPUT_NAME].reshape(-1)
              for i in range(0, len(patches), 64)]
    values = np.concatenate(logits) if logits else np.zeros(0)
    result = {"data": data_dir.name, "seeds": seeds, "model": MODEL_NAME, "cases": len(case_names(data_dir)),
              "candidates_from": {"model": source.model, "version": source.version} if source else None,  # no path
              **patch_metrics(values, patches)}
    if source is not None:
        on = np.array([s == "candidate" for s in patches.source])
        result["network_candidates"] = patch_metrics(values[on], _subset(patches, on))
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _source_of(run: dict[str, Any]) -> NetworkSource | None:
    """The network a run learned candidates from, when it is still where it was (else evaluated without it)."""
    raw = run.get("candidates_from")
    if not raw:
        return None
    source = NetworkSource(Path(raw["repository"]), str(raw["model"]), int(raw["version"]))
    if not ModelRepository(source.repository).model_path(source.model, source.version).is_file():
        LOGGER.warning("classifier evaluation: %s version %d is no longer in %s; evaluated without its candidates",
                       source.model, source.version, source.repository)
        return None
    return source


def _subset(patches: Patches, keep: np.ndarray) -> Patches:
    index = np.flatnonzero(keep)
    return Patches(patches.fine[index], patches.coarse[index], patches.positive[index],
                   [patches.source[i] for i in index], [patches.case[i] for i in index],
                   [patches.kind[i] for i in index], patches.diameter_mm[index])


def _stored_config(run_dir: Path) -> dict[str, Any]:
    raw = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    raw.pop("sha256", None)
    return dict(raw)


def report_lines(result: dict[str, Any]) -> list[str]:
    """Human-readable lines for ``aiws evaluate`` of a classifier run."""
    kinds = ", ".join(f"{k} {v:.3f}" for k, v in result.get("by_kind_at_99_specificity", {}).items())
    lines = [f"classifier evaluation on {result['cases']} cases, {result['points']} points ({result['positives']} on "
             f"nodules), seeds {result['seeds'][:3]}…",
             f"AUC {result['auc']}; sensitivity at 95 % specificity {result.get('sensitivity_at_95_specificity')}, "
             f"at 99 % {result.get('sensitivity_at_99_specificity')} ({kinds})"]
    net = result.get("network_candidates")
    if net:
        source = result["candidates_from"]
        lines.append(f"on the {net['points']} candidates of {source['model']} version {source['version']} "
                     f"({net['positives']} on nodules): AUC {net['auc']}")
    return lines
