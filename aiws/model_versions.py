"""Model versions as the service shows and changes them: per pipeline its models, their versions and
cards, which one is active; promote and roll back with the change written to the audit trail.

One path shared by the API (``/api/models``), the console (``/console/models``) and the CLI
(``aiws model``). The active version itself lives in the model's ``config.pbtxt`` (see
:mod:`models.runtime.promote`); the audit rows ``model promoted`` / ``model rolled back`` (model, old
and new version, actor) are the history a rollback replays.
"""
from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiws.config import Config
from aiws.errors import ConfigError, Conflict, NotFound
from aiws.ledger import Ledger
from models.errors import RetryLater
from models.runtime.errors import InferenceFailed, ModelConfigError, ModelNotFound
from models.runtime.promote import Kind, VersionChange, active_version, roll_back, set_active_version
from models.runtime.repository import ModelRepository

LOGGER = logging.getLogger(__name__)

PROMOTED = "model promoted"
ROLLED_BACK = "model rolled back"
_ACTIONS: dict[str, Kind] = {PROMOTED: "promote", ROLLED_BACK: "rollback"}
CARD_JSON = "model_card.json"
SUMMARY_CHARS = 300
MAX_FIGURES = 80

#: The models each pipeline runs (names of ``triton_repo/`` folders; tests check them against the pipelines).
PIPELINE_MODELS: dict[str, tuple[str, ...]] = {
    "lung_nodules": ("lung_nodules", "lung_nodule_classifier"),
    "mammography": ("mammo_detector",),
    "coronary_ct": ("coronary_calcium_labeller",),
    "cardiac_mri": ("cardiac_cine_segmenter",),
    "echo_summary": (),
}


@dataclass(frozen=True)
class VersionInfo:
    version: int
    active: bool
    date: str = ""
    summary: str = ""
    has_card: bool = False
    figures: tuple[str, ...] = ()  # PNG files in the version folder


@dataclass(frozen=True)
class ModelInfo:
    name: str
    pipelines: tuple[str, ...]
    policy: str  # "latest" | "all" | "specific"
    active: int | None
    versions: tuple[VersionInfo, ...]
    error: str = ""  # the configuration does not parse: shown, not raised
    rollback_to: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "pipelines": list(self.pipelines), "policy": self.policy, "active": self.active,
                "rollback_to": self.rollback_to, "error": self.error,
                "versions": [v.__dict__ | {"figures": list(v.figures)} for v in self.versions]}


@dataclass(frozen=True)
class PromoteOutcome:
    change: VersionChange
    audit_id: int
    triton: str = ""  # what the Triton server was asked ("" with the in-process runtime)


def repository(config: Config) -> ModelRepository:
    return ModelRepository(config.runtime.model_repository)


def _card(repo: ModelRepository, model: str, version: int) -> dict[str, Any]:
    path = repo.root / model / str(version) / CARD_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _summary(card: Mapping[str, Any]) -> str:
    text = str(card.get("summary", ""))
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"


def figures(repo: ModelRepository, model: str, version: int) -> tuple[str, ...]:
    """PNG plots shipped with a version (file names in its folder)."""
    folder = repo.root / model / str(version)
    return tuple(sorted(p.name for p in folder.glob("*.png") if p.is_file())) if folder.is_dir() else ()


Change = tuple[Kind, int | None, int]


def histories(ledger: Ledger) -> dict[str, list[Change]]:
    """The recorded changes of every model's active version, oldest first: model -> [(kind, old, new)]."""
    out: dict[str, list[Change]] = {}
    for row in reversed(ledger.list_audit(limit=1_000_000, action_prefix="model ")):
        kind = _ACTIONS.get(row["action"])
        d = row["detail"]
        if kind is not None and isinstance(d.get("model"), str) and isinstance(d.get("new_version"), int):
            old = d.get("old_version")
            out.setdefault(d["model"], []).append((kind, old if isinstance(old, int) else None, d["new_version"]))
    return out


def history(ledger: Ledger, model: str) -> list[Change]:
    """The recorded changes of *model*'s active version, oldest first (kind, old, new)."""
    return histories(ledger).get(model, [])


def describe_model(repo: ModelRepository, ledger: Ledger, model: str,
                   changes: dict[str, list[Change]] | None = None) -> ModelInfo:
    """*model* with its versions, cards and active version; *changes*: :func:`histories` when already read."""
    from models.runtime.promote import rollback_target

    pipelines = tuple(p for p, names in PIPELINE_MODELS.items() if model in names)
    try:
        spec = repo.spec(model)
        active = active_version(repo, model)
    except (ModelConfigError, ModelNotFound) as exc:
        return ModelInfo(model, pipelines, "?", None, (), error=str(exc).splitlines()[0])
    versions = []
    for v in sorted(repo.versions(model), reverse=True):
        card = _card(repo, model, v)
        versions.append(VersionInfo(v, v == active, str(card.get("date", "")), _summary(card),
                                    repo.card_path(model, v).is_file(), figures(repo, model, v)))
    recorded = changes.get(model, []) if changes is not None else history(ledger, model)
    return ModelInfo(model, pipelines, spec.version_policy.kind, active, tuple(versions),
                     rollback_to=rollback_target(recorded))


def overview(config: Config, ledger: Ledger) -> list[tuple[str, list[ModelInfo]]]:
    """Per pipeline (then "other" for models no pipeline names) its models with versions and cards."""
    repo = repository(config)
    present = repo.models()
    changes = histories(ledger)
    out = []
    for pipeline, names in PIPELINE_MODELS.items():
        if names:
            out.append((pipeline, [describe_model(repo, ledger, n, changes) for n in names if n in present]))
    named = {n for names in PIPELINE_MODELS.values() for n in names}
    others = [describe_model(repo, ledger, n, changes) for n in present if n not in named]
    if others:
        out.append(("other", others))
    return out


def card_markdown(config: Config, model: str, version: int) -> str:
    """The model card (markdown) of a version.

    Raises:
        NotFound: no such model, version or card.
    """
    repo = repository(config)
    _known(repo, model, version)
    path = repo.card_path(model, version)
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise NotFound(f"model {model} version {version}: no model card") from None


def card_figures(config: Config, model: str, version: int) -> list[tuple[str, str]]:
    """The numbers of a card's ``metrics`` as (dotted name, value) rows, at most :data:`MAX_FIGURES`."""
    rows: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if len(rows) >= MAX_FIGURES:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, bool):
            rows.append((key, "yes" if value else "no"))
        elif isinstance(value, int | float):
            rows.append((key, f"{value:.4g}" if isinstance(value, float) else str(value)))

    walk(_card(repository(config), model, version).get("metrics", {}), "")
    return rows


def figure_path(config: Config, model: str, version: int, name: str) -> Path:
    """The PNG *name* of a version (only a name :func:`figures` lists).

    Raises:
        NotFound: no such figure.
    """
    repo = repository(config)
    _known(repo, model, version)
    if name not in figures(repo, model, version):
        raise NotFound(f"model {model} version {version}: no figure {name!r}")
    return repo.root / model / str(version) / name


def _known(repo: ModelRepository, model: str, version: int) -> None:
    if model not in repo.models() or version not in repo.versions(model):
        raise NotFound(f"model {model!r} version {version}: not in the model repository")


def _reload_triton(config: Config, model: str) -> str:
    """Ask the configured Triton to load the model again (explicit model control); what happened, in words."""
    if config.runtime.backend != "triton":
        return ""
    from models.runtime.triton import TritonRuntime

    triton = TritonRuntime(repository(config), config.runtime.triton_url, config.runtime.triton_protocol,
                           min(config.runtime.timeout_seconds, 30.0))
    try:
        loaded = triton.load_model(model)
    except (RetryLater, InferenceFailed) as exc:
        LOGGER.warning("model %s: Triton did not load the new version now: %s", model, exc)
        return f"not reloaded now ({type(exc).__name__}); jobs wait until Triton serves the version"
    finally:
        triton.close()
    return "loaded" if loaded else "Triton polls its repository: it loads the version at its next poll"


@contextmanager
def _changing(config: Config) -> Iterator[None]:
    """One change of an active version at a time on this host (service, CLI): the history read, the file
    written and the audit row appended together, so two promotions cannot both record the same old version."""
    path = config.storage.data_dir / "model-versions.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _apply(config: Config, ledger: Ledger, actor: str, model: str, version: int | None) -> PromoteOutcome:
    with _changing(config):
        return _apply_locked(config, ledger, actor, model, version)


def _apply_locked(config: Config, ledger: Ledger, actor: str, model: str, version: int | None) -> PromoteOutcome:
    repo = repository(config)
    try:
        if version is None:
            change = roll_back(repo, model, history(ledger, model))
        else:
            change = set_active_version(repo, model, version)
    except ModelNotFound as exc:
        if version is None and model in repo.models():
            raise Conflict(str(exc)) from None
        raise NotFound(str(exc)) from None
    except ModelConfigError as exc:
        raise ConfigError(str(exc)) from None
    triton = _reload_triton(config, model)
    action = PROMOTED if change.kind == "promote" else ROLLED_BACK
    detail: dict[str, Any] = {"model": model, "old_version": change.old, "new_version": change.new,
                              "runtime": config.runtime.backend}
    if triton:
        detail["triton"] = triton
    audit_id = ledger.audit(actor, action, detail)
    return PromoteOutcome(change, audit_id, triton)


def promote(config: Config, ledger: Ledger, actor: str, model: str, version: int) -> PromoteOutcome:
    """Make *version* the active version of *model*; audited as ``model promoted``.

    Raises:
        NotFound: no such model or version. ConfigError: the version's ONNX does not match its configuration.
    """
    return _apply(config, ledger, actor, model, version)


def rollback(config: Config, ledger: Ledger, actor: str, model: str) -> PromoteOutcome:
    """Return *model* to the version active before its last promotion; audited as ``model rolled back``.

    Raises:
        NotFound: no such model (or the version gone). Conflict: nothing recorded to roll back to.
    """
    return _apply(config, ledger, actor, model, None)
