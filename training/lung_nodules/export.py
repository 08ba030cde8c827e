"""Export a trained lung-nodule network to ONNX, with its ``config.pbtxt`` and model card.

Training ends by exporting the best checkpoint into ``RUN/export/`` (a one-model repository,
version 1) which ``aiws evaluate`` runs through ONNX Runtime exactly as the service would.
``aiws export RUN`` then publishes that file as the next version of ``triton_repo/<model>/``
with a model card holding the evaluation figures.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from models.lung_nodules.classifier import MODEL_NAME as CLASSIFIER
from models.lung_nodules.network import INPUT_NAME, OUTPUT_NAME, probability_head
from models.runtime.errors import ModelConfigError
from models.runtime.repository import MODEL_FILENAME, ModelRepository
from training.framework import export as framework_export
from training.framework.spec import ExportSpec, TensorSpec
from training.lung_nodules.config import ExportSettings, TrainConfig
from training.publish import CARD_JSON, publish_version, render_card

LOGGER = logging.getLogger(__name__)

CANDIDATE_DIR = "export"


def export_spec(settings: ExportSettings) -> ExportSpec:
    """The network's tensors (``ct`` -> ``nodule_prob``, [1, *roi], the probability head), dynamic batching with
    the batch size preferred and the grid as ``config.pbtxt`` parameters, for the framework's one exporter."""
    return ExportSpec(
        model=settings.model_name, inputs=(TensorSpec(INPUT_NAME, (1, *settings.roi)),),
        outputs=(TensorSpec(OUTPUT_NAME, (1, *settings.roi)),), example_shapes=((1, 1, *settings.roi),),
        max_batch_size=settings.max_batch_size, head=probability_head, preferred_batch_sizes=(settings.max_batch_size,),
        opset=settings.opset, parameters={"spacing_mm": ",".join(f"{v:g}" for v in settings.spacing_mm),
                                          "hu_window": ",".join(f"{v:g}" for v in settings.hu_window)})


def onnx_from_network(network: Any, path: Path, settings: ExportSettings) -> None:
    """Write the probability head of *network* as ONNX: input ``ct`` [N,1,*roi], output ``nodule_prob`` [N,1,*roi]."""
    framework_export.onnx_file(network, export_spec(settings), path)


def config_text(settings: ExportSettings, instance_count: int = 1) -> str:
    """``config.pbtxt`` for the exported network (ONNX Runtime platform, dynamic batching, CPU/GPU instances)."""
    return framework_export.config_text(export_spec(settings), instance_count)


INTENDED_USE = ("Detection, measurement and Lung-RADS v2022 categorisation of pulmonary nodules on chest CT "
                "(slices <= 2.5 mm), as a computer-aided second reader for radiologists. Not a diagnosis; "
                "every finding must be reviewed.")
LIMITATIONS = [
    "Trained and evaluated on synthetic phantoms only (ellipsoid nodules, tube vessels and airways); "
    "performance on patient CT is unknown until validated on local data.",
    "No perifissural, calcified, cavitary or spiculated nodules in training; calcification and spiculation are not "
    "assessed (no benign-calcification or fat category 1/2 rules). 4X only for the feature the pipeline measures: "
    "a category 3 or 4 ground-glass nodule whose volume doubles within a year against the prior (spiculation and "
    "lymph nodes are not looked at); the S modifier is not assessed.",
    "Juxtapleural rule (Lung-RADS v2022): a solid nodule < 10 mm attached to the costal or mediastinal pleura is "
    "category 2 only when every benign feature is measured present on its outline: a smooth margin (it fills its "
    "moment-equivalent ellipsoid, volume ratio 0.8-1.2) and a lentiform or oval shape (shortest equivalent "
    "semi-axis < 0.75 of the longest); a round nodule (>= 0.85), a shape in between or an outline of under 20 "
    "voxels keeps its size category, and the outputs name the rule. Fissures are not seen: a perifissural nodule "
    "keeps its size category. The default phantoms' juxtapleural nodules are all oval or lentiform (round ones "
    "only with the phantom option round_juxtapleural).",
    "Location is side and cranio-caudal third, not lobe.",
]
#: limitation sentences of cards published before the v2022 juxtapleural and 4X rules (issue 21), and what a run
#: derived from such a version (:func:`run_from_version`) says instead
REWORDED_LIMITATIONS = {
    "No perifissural, calcified, cavitary or spiculated nodules in training; calcification and margins are not "
    "assessed (no 4X, no benign-calcification category 1/2 rules).": LIMITATIONS[1],
    "Juxtapleural benign-feature rule: a solid juxtapleural nodule filling its moment-equivalent ellipsoid is "
    "treated as smooth and oval.": LIMITATIONS[2],
}
CONVENTIONS = [
    "Mean diameter = (long + short axis) / 2 on the axial image of largest area, one decimal, round half up.",
    "Solid component: HU >= -300 inside the outline, less dense parts that continue outside it (vessels crossing "
    "the edge of ground glass) unless they hold >= 25 % of the outline; ground-glass when its mean diameter < "
    "1.5 mm; solid when >= 80 % of the nodule's mean diameter.",
    "Lung-RADS v2022 per nodule (baseline) and exam = highest category; see models/lung_nodules/lungrads.py. "
    "Against a prior, a part-solid nodule is new or growing by its solid component (> 1.5 mm); growth of the "
    "ground-glass part alone keeps the baseline rule for its size.",
    "Evaluation truth: a phantom's juxtapleural nodule (smooth and on the pleura by construction) < 10 mm is "
    "category 2 when its known shape is oval or lentiform and keeps its size category when round (shortest "
    "semi-axis >= 0.85 of the longest).",
    "Fleischner 2017 only for incidental findings in adults >= 35, banded on the mean diameter rounded to whole "
    "millimetres; indication and risk per study ([pipelines.lung_nodules] rules).",
]


#: what a network trained on both phantom families (issue 28) says instead of the first two limitations
LIMITATIONS_BOTH_FAMILIES = [
    "Trained and evaluated on synthetic phantoms only, of two independently built families: A (ellipsoid nodules, "
    "tube vessels and airways) and B (other body, lung and heart shapes, fissures, vessel trees tapering to the "
    "pleura, atelectasis bands, pleural plaques; soft and sharp kernels, 0.6-3 mm slices, kVp 100-140); "
    "performance on patient CT is unknown until validated on local data.",
    "Lobulated, spiculated, irregular, juxtavascular, juxtapleural and perifissural nodules were in training "
    "(family B), calcified and cavitary ones were not; calcification and spiculation are not assessed (no "
    "benign-calcification or fat category 1/2 rules). 4X only for the feature the pipeline measures: a category 3 "
    "or 4 ground-glass nodule whose volume doubles within a year against the prior (spiculation and lymph nodes are "
    "not looked at); the S modifier is not assessed.",
]


def limitations(families: Any) -> list[str]:
    """The card's limitations for a network trained on *families* (``trained_on.families``: family -> seeds)."""
    if isinstance(families, dict) and {"a", "b"} <= set(families):
        return LIMITATIONS_BOTH_FAMILIES + LIMITATIONS[2:]
    return list(LIMITATIONS)


def candidate_card(config: TrainConfig, trained_on: dict[str, Any], validation: dict[str, Any],
                   threshold: float) -> dict[str, Any]:
    """The model card of a freshly trained network (evaluation figures are added by ``aiws evaluate``)."""
    post = {**asdict(config.postprocess), "min_score": round(threshold, 4)}
    return {
        "model": config.export.model_name, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": "3D U-Net (MONAI) nodule segmentation, sliding window on a 1 mm grid, then measured outlines.",
        "intended_use": INTENDED_USE, "trained_on": trained_on, "metrics": {"validation": validation},
        "operating_point": {"score_threshold": round(threshold, 4),
                            "chosen_for_max_fp_per_scan": config.export.max_fp_per_scan},
        "conventions": CONVENTIONS, "limitations": limitations(trained_on.get("families")),
        "provenance": {"training_config_sha256": config.config_hash(), "training_config": config.to_dict()},
        "postprocess": post,
    }


def write_candidate(run_dir: Path, network: Any, config: TrainConfig, card: dict[str, Any]) -> Path:
    """Export *network* into ``RUN/export/<model>/1/`` (replacing an earlier candidate); returns the ONNX path."""
    import shutil

    root = run_dir / CANDIDATE_DIR
    if root.exists():
        shutil.rmtree(root)
    onnx_tmp = run_dir / "model.onnx.tmp"
    onnx_from_network(network, onnx_tmp, config.export)
    publish_version(root, config.export.model_name, onnx_tmp, config_text(config.export), card, version=1)
    onnx_tmp.unlink()
    return root / config.export.model_name / "1" / MODEL_FILENAME


_DERIVED = re.compile(r" Same network as version \d+: started from it by aiws rescore --from-version, not retrained\.")


def run_from_version(repo_root: Path, model: str, version: int | None, run_dir: Path) -> int:
    """A run folder whose candidate is a published version (no training); returns the version used.

    ``aiws rescore``, ``aiws evaluate`` and ``aiws export`` then work on it as on a trained run: an ML
    engineer refits the second stage of a shipped network on local data and publishes the result as the
    next version, same weights. The card keeps the network's provenance, gets today's measurement
    conventions, today's wording of the rule limitations it states (:data:`REWORDED_LIMITATIONS`) and
    ``provenance.derived_from``; ``run.json`` keeps the training seeds and the seeds its
    second stage was fitted on, which evaluation must still avoid (until ``aiws rescore`` refits it).

    Raises:
        FileExistsError: *run_dir* exists. ModelError: no such model or version.
    """
    repo = ModelRepository(repo_root)
    used = repo.resolve_version(model, version)
    source = repo.model_path(model, used).parent
    card = json.loads((source / CARD_JSON).read_text(encoding="utf-8"))
    card["conventions"] = CONVENTIONS
    card["limitations"] = [REWORDED_LIMITATIONS.get(line, line) for line in card.get("limitations", [])]
    card.setdefault("provenance", {})["derived_from"] = {"model": model, "version": used}
    summary = _DERIVED.sub("", card.get("summary", ""))  # a version derived from a derived one names its source
    card["summary"] = f"{summary} Same network as version {used}: started from it by aiws rescore --from-version, " \
                      f"not retrained."
    run_dir.mkdir(parents=True, exist_ok=False)
    publish_version(run_dir / CANDIDATE_DIR, model, source / MODEL_FILENAME,
                    repo.config_path(model).read_text(encoding="utf-8"), card, version=1)
    if "classifier" in card:
        _copy_model(repo, CLASSIFIER, int(card["classifier"]["version"]), ModelRepository(run_dir / CANDIDATE_DIR))
    seeds = card.get("trained_on", {}).get("phantom_seeds", [])
    run = {"run": run_dir.name, "model": model, "derived_from": {"model": model, "version": used},
           "training_seeds": seeds}
    rescore_seeds = card.get("rescore", {}).get("trained_on", {}).get("seeds")
    if rescore_seeds:
        run["rescore_seeds"] = rescore_seeds
    (run_dir / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    LOGGER.info("run %s: candidate is %s version %d (no training)", run_dir.name, model, used)
    return used


def run_model(run_dir: Path) -> str:
    """The model a run trains or refits (``model`` in ``run.json``; a run of an earlier release without it: its
    one exported model other than a candidate classifier it carries).

    Raises:
        FileNotFoundError: the run has no exported candidate.
    """
    run_path = run_dir / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else {}
    if "model" in run:
        return str(run["model"])
    models = ModelRepository(run_dir / CANDIDATE_DIR).models()
    if not models:
        raise FileNotFoundError(f"{run_dir}: no exported candidate in {run_dir / CANDIDATE_DIR} (train first)")
    return next((m for m in models if m != CLASSIFIER), models[0])


def _copy_model(source: ModelRepository, model: str, version: int, target: ModelRepository) -> Path:
    """Copy version *version* of *model* (with its ``config.pbtxt``) from *source* into *target*; returns the folder.

    Raises:
        ModelNotFound: *source* has no such version.
    """
    source.resolve_version(model, version)
    folder = target.root / model / str(version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.config_path(model), target.config_path(model))
    shutil.copytree(source.root / model / str(version), folder)
    return folder


def attach_classifier(run_dir: Path, source: str, repo_root: Path | None) -> dict[str, Any] | None:
    """Give the run's candidate a candidate classifier (``classifier`` in its card, the ONNX beside it), replacing
    an earlier one; returns the card's ``classifier`` entry.

    *source*: a published version of ``lung_nodule_classifier`` in *repo_root* (``0``: the latest), a classifier
    run folder (``aiws train lung_nodule_classifier``; published with the run at ``aiws export``), or ``none``.

    Raises:
        FileNotFoundError: *source* is neither a version nor a classifier run. ModelNotFound: no such version.
    """
    from training.lung_nodules.classifier import is_classifier_run

    candidates = ModelRepository(run_dir / CANDIDATE_DIR)
    model = run_model(run_dir)
    card_path = candidates.card_path(model, candidates.resolve_version(model)).with_name(CARD_JSON)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    entry: dict[str, Any] | None = None
    trained: Path | None = None
    if source.isdigit():
        if repo_root is None:
            raise FileNotFoundError(f"classifier version {source}: no model repository given")
        origin = ModelRepository(repo_root)
        entry = {"model": CLASSIFIER, "version": origin.resolve_version(CLASSIFIER, int(source) or None)}
    elif source != "none":
        trained = Path(source)
        if not is_classifier_run(trained):
            raise FileNotFoundError(f"{trained}: not a classifier run (aiws train {CLASSIFIER}) nor a version number")
        origin = ModelRepository(trained / CANDIDATE_DIR)
        entry = {"model": CLASSIFIER, "version": 1, "run": trained.name, "published": False}
    shutil.rmtree(candidates.root / CLASSIFIER, ignore_errors=True)
    if entry is not None:
        folder = _copy_model(origin, CLASSIFIER, int(entry["version"]), candidates)
        if trained is not None:
            _with_evaluation(folder / CARD_JSON, trained)
    card.pop("classifier", None)
    if entry is not None:
        card["classifier"] = entry
    card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    card_path.with_name("model_card.md").write_text(render_card(card), encoding="utf-8")
    return entry


def _with_evaluation(card_path: Path, run_dir: Path) -> dict[str, Any]:
    """The card at *card_path* with the run's ``evaluation.json`` (if any) as ``metrics.evaluation``; written back."""
    card = _evaluated(json.loads(card_path.read_text(encoding="utf-8")), run_dir)
    if "evaluation" in card.get("metrics", {}):
        card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
        card_path.with_name("model_card.md").write_text(render_card(card), encoding="utf-8")
    return card


def _evaluated(card: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """*card* with the run's ``evaluation.json`` (if any) as ``metrics.evaluation`` and its ``cross_family.json``
    (``python -m training.families RUN``: the train family -> evaluation family rows, issue 28) as ``cross_family``."""
    evaluation = run_dir / "evaluation.json"
    if evaluation.is_file():
        card.setdefault("metrics", {})["evaluation"] = json.loads(evaluation.read_text(encoding="utf-8"))
    cross = run_dir / "cross_family.json"
    if cross.is_file():
        card["cross_family"] = json.loads(cross.read_text(encoding="utf-8"))
    return card


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _published_classifier(candidates: ModelRepository, entry: dict[str, Any], repo_root: Path) -> dict[str, Any]:
    """The card entry of the run's classifier once it is in *repo_root*: published now when it came from a
    classifier run, else checked to be the same file as the version it names.

    Raises:
        ModelConfigError: *repo_root* has another file under that version.
    """
    folder = candidates.root / CLASSIFIER / str(entry["version"])
    if entry.get("published") is False:
        card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
        card.setdefault("provenance", {})["run"] = entry.get("run")
        card["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        version = publish_version(repo_root, CLASSIFIER, folder / MODEL_FILENAME,
                                  candidates.config_path(CLASSIFIER).read_text(encoding="utf-8"), card)
        return {"model": CLASSIFIER, "version": version}
    published = ModelRepository(repo_root).model_path(CLASSIFIER, int(entry["version"]))
    if not published.is_file() or _sha256(published) != _sha256(folder / MODEL_FILENAME):
        raise ModelConfigError(f"{published}: not the classifier this run was fitted with ({CLASSIFIER} version "
                               f"{entry['version']}); refit with aiws rescore --classifier")
    return {"model": CLASSIFIER, "version": int(entry["version"])}


def export_run(run_dir: Path, repo_root: Path) -> tuple[str, int]:
    """Publish the run's candidate as the next version of its model in *repo_root*; returns (model, version).

    The model card gets the run's ``evaluation.json`` figures when ``aiws evaluate`` was run. A candidate
    classifier the run took from a classifier run is published first, as the next version of its own model.

    Raises:
        FileNotFoundError: the run has no exported candidate.
        ModelConfigError: incompatible with the model's existing ``config.pbtxt``, or the classifier it names
            differs from the one published under that version.
    """
    candidates = ModelRepository(run_dir / CANDIDATE_DIR)
    model = run_model(run_dir)
    if model not in candidates.models():
        raise FileNotFoundError(f"{run_dir}: no exported {model} in {run_dir / CANDIDATE_DIR} (train first)")
    version = candidates.resolve_version(model)
    folder = candidates.root / model / str(version)
    card = _evaluated(json.loads((folder / CARD_JSON).read_text(encoding="utf-8")), run_dir)
    if "classifier" in card:
        card["classifier"] = _published_classifier(candidates, card["classifier"], repo_root)
    card["provenance"]["run"] = run_dir.name
    card["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    config = candidates.config_path(model).read_text(encoding="utf-8")
    published = publish_version(repo_root, model, folder / MODEL_FILENAME, config, card)
    return model, published


def load_weights_from_onnx(module: Any, path: Path, prefix: str = "") -> None:
    """Copy the ONNX initializers of *path* into *module*'s parameters and buffers (same names, less *prefix*:
    ``"net."`` loads the exported head's network into a bare one).

    Used by the benchmark to run the shipped weights in torch eager, and by fine-tuning from a published version
    (:func:`training.lung_nodules.train.load_initial_weights`).

    Raises:
        ValueError: a parameter of *module* has no initializer of the same name and shape.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    weights = {i.name.removeprefix(prefix): numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    state = module.state_dict()
    missing = [k for k, v in state.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    if missing:
        raise ValueError(f"{path}: no initializer for {missing[:5]} ({len(missing)} of {len(state)} tensors)")
    module.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})
