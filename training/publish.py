"""Publishing a model version into a Triton model repository, atomically.

The version folder is assembled in a staging folder next to the repository (same file system)
and renamed into ``<repo>/<model>/<version>/`` in one step, so a running service (which lists
the version folders at every job: hot reload) never sees a half-written version. The model's
``config.pbtxt`` is written once; a later version must be compatible with it (same tensors,
dims, batch size and parameters), otherwise publishing stops with the differences.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from models.runtime.errors import ModelConfigError
from models.runtime.model_config import parse_model_config
from models.runtime.repository import CARD_NAME, MODEL_FILENAME, ModelRepository, check_model_name
from models.runtime.validate import check_against_onnx

LOGGER = logging.getLogger(__name__)

CARD_JSON = "model_card.json"


def _comparable(text: str, origin: str) -> dict[str, Any]:
    spec = parse_model_config(text, origin)
    doc = asdict(spec)
    doc.pop("version_policy", None)
    doc.pop("instance_count", None)
    doc.pop("dynamic_batching", None)
    return dict(json.loads(json.dumps(doc, default=str)))


def ensure_config(repo: ModelRepository, model: str, config_text: str) -> None:
    """Write ``<model>/config.pbtxt`` if absent; else check the new version fits it.

    Raises:
        ModelConfigError: the existing configuration differs in tensors, dims, batch size or parameters.
    """
    path = repo.config_path(model)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(config_text, encoding="utf-8")
        os.replace(tmp, path)
        return
    old = _comparable(path.read_text(encoding="utf-8"), str(path))
    new = _comparable(config_text, "new version")
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ModelConfigError(f"{path}: the new version needs a different configuration ({', '.join(diff)}); "
                               f"publish it under a new model name")


def publish_version(repo_root: Path, model: str, onnx_path: Path, config_text: str, card: Mapping[str, Any],
                    version: int | None = None, extra_files: Mapping[str, Path] | None = None) -> int:
    """Copy *onnx_path* with its model card (markdown and JSON) into ``<repo_root>/<model>/<version>/``.

    Returns the version.

    *version* None: the next free number. The ONNX file is checked against the configuration
    before anything becomes visible. *extra_files*: file name in the version folder -> file to copy there
    (the training framework keeps the torch ``state_dict`` and the card's plots beside the ONNX file).

    Raises:
        ModelConfigError: incompatible configuration, ONNX/config mismatch, or the version exists.
    """
    check_model_name(model)
    repo = ModelRepository(repo_root)
    check_against_onnx(parse_model_config(config_text, "new version"), onnx_path)
    ensure_config(repo, model, config_text)
    version = version or repo.next_version(model)
    target = repo_root / model / str(version)
    if target.exists():
        raise ModelConfigError(f"{target}: version {version} of {model} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".aiws-publish-{model}-", dir=repo_root.resolve().parent))
    try:
        shutil.copyfile(onnx_path, staging / MODEL_FILENAME)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / Path(name).name)
        full = {**card, "model": model, "version": version}
        (staging / CARD_NAME).write_text(render_card(full), encoding="utf-8")
        (staging / CARD_JSON).write_text(json.dumps(full, indent=2), encoding="utf-8")
        for f in staging.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(staging, 0o755)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    LOGGER.info("published %s version %d in %s", model, version, repo_root)
    return version


MAX_LIST_IN_MARKDOWN = 400  # characters of JSON


def _brief(value: Any) -> Any:
    """*value* with long lists (per-scan records, FROC curves, case names) cut to a note: the
    markdown card stays readable, ``model_card.json`` keeps everything."""
    if isinstance(value, Mapping):
        return {k: _brief(v) for k, v in value.items()}
    if isinstance(value, list) and len(json.dumps(value)) > MAX_LIST_IN_MARKDOWN:
        return f"{len(value)} items, listed in {CARD_JSON}"
    if isinstance(value, list):
        return [_brief(v) for v in value]
    return value


def _bars(value: Any) -> list[str]:
    """Markdown tables of every ``bars`` mapping (``{name: {value, bar, met}}``) found in *value*."""
    out: list[str] = []
    if not isinstance(value, Mapping):
        return out
    bars = value.get("bars")
    if isinstance(bars, Mapping) and all(isinstance(b, Mapping) and "bar" in b for b in bars.values()):
        out += ["| measure | value | bar | met |", "| --- | --- | --- | --- |"]
        out += [f"| {name} | {b.get('value')} | {b['bar']} | {'yes' if b.get('met') else 'no'} |"
                for name, b in bars.items()] + [""]
    for key, sub in value.items():
        if key != "bars":
            out += _bars(sub)
    return out


def _weights(stage: Mapping[str, Any]) -> list[str]:
    """A second stage's features as a table: weight per standardised feature, with the mean and scale used."""
    out = [f"{stage.get('method', 'linear model')}, bias {stage.get('bias', 0.0):.3f}; score = sigmoid(bias + "
           "sum of weight * (value - mean) / scale)", "", "| feature | weight | mean | scale |",
           "| --- | --- | --- | --- |"]
    out += [f"| {f} | {w:.3f} | {m:.4g} | {s:.4g} |" for f, w, m, s in
            zip(stage["features"], stage["weights"], stage["mean"], stage["scale"], strict=True)]
    return [*out, ""]


def cross_family_lines(rows: Any) -> list[str]:
    """The "train family -> evaluation family" table (issue 28): one row per pair with every quality bar's
    value and whether it is met (rows as :func:`training.families.card_rows` gives them)."""
    names = list(dict.fromkeys(name for row in rows for name in row.get("bars", {})))
    out = ["| train family | evaluation family | phantoms | " + " | ".join(names) + " |",
           "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for row in rows:
        cells = []
        for name in names:
            b = row.get("bars", {}).get(name)
            cells.append("" if b is None else f"{b.get('value')} ({'met' if b.get('met') else 'not met'}, bar {b['bar']})")
        out.append(f"| {row.get('train_family')} | {row.get('evaluation_family')} | {row.get('phantoms', '')} | "
                   + " | ".join(cells) + " |")
    return [*out, ""]


def render_card(card: Mapping[str, Any]) -> str:
    """Markdown model card from the card dictionary (sections in a fixed order; quality bars as a table)."""
    lines = [f"# Model card: {card['model']} version {card.get('version', '?')}", ""]
    for key, title in (("summary", "Summary"), ("intended_use", "Intended use"), ("trained_on", "Trained on"),
                       ("metrics", "Metrics"), ("cross_family", "Train family -> evaluation family"),
                       ("evaluation_added", "Evaluation added"), ("operating_point", "Operating point"),
                       ("rescore", "Second stage (false-positive reduction)"), ("conventions", "Conventions"),
                       ("limitations", "Limitations"), ("plots", "Plots"), ("provenance", "Provenance")):
        if key not in card:
            continue
        if key == "plots":  # PNG files in the version folder, by name
            lines += ["## Plots", ""] + [f"![{Path(name).stem}]({name})" for name in card[key]] + [""]
            continue
        if key == "cross_family":
            lines += [f"## {title}", "", *cross_family_lines(card[key])]
            continue
        if key == "evaluation_added":  # a later evaluation of the same published network: its date and what it found
            lines += [f"## {title} {card[key].get('date', '')}".rstrip(), "", str(card[key].get("note", "")), ""]
            continue
        lines += [f"## {title}", ""]
        value = card[key]
        if isinstance(value, str):
            lines += [value, ""]
        elif isinstance(value, list):
            lines += [f"- {item}" for item in value] + [""]
        else:
            if key == "metrics":
                lines += _bars(value)
            if key == "rescore" and isinstance(value, Mapping) and "weights" in value:
                lines += _weights(value)
                value = {k: v for k, v in value.items() if k not in ("features", "mean", "scale", "weights")}
            lines += ["```json", json.dumps(_brief(value), indent=2), "```", ""]
    return "\n".join(lines)
