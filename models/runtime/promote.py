"""Choose the active version of a model explicitly: promote a version, roll back to the one before.

The active version is what the model's ``config.pbtxt`` says: promoting version N writes
``version_policy { specific { versions: [N] } }`` into it (a temporary file in the model folder,
fsynced, then renamed over the old one: a reader sees the old file or the new one, never half of
one). Both runtimes follow it:

- ONNX Runtime in-process (:mod:`models.runtime.ort`) lists the repository at every call, so the
  next job runs version N (and names it in its results: ``algorithm_version``).
- Triton serving the same repository reloads the model when it polls the repository
  (``--model-control-mode=poll``); in ``explicit`` mode the service asks it to load the model
  (:meth:`models.runtime.triton.TritonRuntime.load_model`). Until version N is ready a job asking
  for it gets :class:`~models.runtime.errors.ModelNotReady` (retried later), never another version.

The history (who promoted what, old and new version) is kept by the caller, in the audit trail;
:func:`rollback_target` replays it to find the version a rollback returns to.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.runtime.errors import ModelConfigError, ModelNotFound
from models.runtime.model_config import message_to_text, parse_message, parse_model_config
from models.runtime.repository import ModelRepository, check_model_name
from models.runtime.validate import check_against_onnx

LOGGER = logging.getLogger(__name__)

Kind = Literal["promote", "rollback"]


@dataclass(frozen=True)
class VersionChange:
    """One change of the active version: *old* is the version served before (None: none was)."""

    model: str
    old: int | None
    new: int
    kind: Kind


def active_version(repo: ModelRepository, model: str) -> int | None:
    """The version the runtimes run now (the highest one the ``version_policy`` serves); None: none.

    Raises:
        ModelNotFound: no such model. ModelConfigError: its ``config.pbtxt`` does not parse.
    """
    served = repo.served_versions(model)
    return served[0] if served else None


def check_version(repo: ModelRepository, model: str, version: int) -> None:
    """Raise unless *version* of *model* is on disk and its ONNX file matches ``config.pbtxt``.

    Raises:
        ModelNotFound: no such model, or no such version folder with a model file.
        ModelConfigError: the ONNX inputs/outputs (names, data types, dims) differ from the declared ones.
    """
    check_model_name(model)
    spec = repo.spec(model)
    present = repo.versions(model)
    if version not in present:
        raise ModelNotFound(f"model {model!r}: version {version} is not in the repository "
                            f"(present: {', '.join(map(str, present)) or 'none'})")
    check_against_onnx(spec, repo.model_path(model, version))


def pinned_config_text(text: str, origin: str, version: int) -> str:
    """*text* (a ``config.pbtxt``) with its ``version_policy`` replaced by ``specific { versions: [version] }``.

    Raises:
        ModelConfigError: *text* does not parse as a Triton model configuration.
    """
    msg = parse_message(text, origin)
    msg.version_policy.Clear()
    msg.version_policy.specific.versions.append(version)
    new_text = message_to_text(msg)
    parse_model_config(new_text, origin)  # what we write must read back
    return new_text


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def set_active_version(repo: ModelRepository, model: str, version: int, kind: Kind = "promote") -> VersionChange:
    """Make *version* the only version of *model* the runtimes serve (see the module docstring).

    Returns the change (old and new version) for the caller's audit trail.

    Raises:
        ModelNotFound: no such model or version.
        ModelConfigError: the version's ONNX does not match ``config.pbtxt``, or the file cannot be written.
    """
    check_version(repo, model, version)
    old = active_version(repo, model)
    path = repo.config_path(model)
    try:
        text = path.read_text(encoding="utf-8")
        _write_atomically(path, pinned_config_text(text, str(path), version))
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot write the version policy: {exc.strerror or type(exc).__name__}") \
            from None
    LOGGER.info("model %s: active version %s -> %d (%s)", model, old, version, kind)
    return VersionChange(model, old, version, kind)


def rollback_target(history: Iterable[tuple[Kind, int | None, int]]) -> int | None:
    """The version a rollback returns to, from the changes of one model oldest first (kind, old, new).

    A promotion pushes the version it replaced, a rollback pops one: promote 1->2, promote 2->3,
    rollback 3->2, rollback 2->1. None when nothing is left to return to.
    """
    stack: list[int] = []
    for kind, old, _new in history:
        if kind == "promote" and old is not None:
            stack.append(old)
        elif kind == "rollback" and stack:
            stack.pop()
    return stack[-1] if stack else None


def roll_back(repo: ModelRepository, model: str, history: Iterable[tuple[Kind, int | None, int]]) -> VersionChange:
    """Make the version before the current promotion active again (see :func:`rollback_target`).

    Raises:
        ModelNotFound: nothing recorded to roll back to, or that version is gone from the repository.
        ModelConfigError: as :func:`set_active_version`.
    """
    target = rollback_target(history)
    if target is None:
        raise ModelNotFound(f"model {model!r}: no earlier active version recorded to roll back to")
    return set_active_version(repo, model, target, kind="rollback")
