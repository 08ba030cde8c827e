"""The Triton model repository on disk (``triton_repo/``), the single source of model files.

Layout: ``<root>/<model>/config.pbtxt`` and ``<root>/<model>/<version>/model.onnx`` (plus a
model card per version). Versions are positive integers; the served ones follow the model's
``version_policy`` (default: the latest one).

Hot reload: nothing is cached here. Every call lists the version folders again, so a new
version written by ``aiws export`` (staged elsewhere, then renamed into place in one atomic
step) is used by the next job without a restart.
"""
from __future__ import annotations

import logging
from pathlib import Path

from models.runtime.errors import ModelConfigError, ModelNotFound
from models.runtime.model_config import ModelSpec, read_model_config

LOGGER = logging.getLogger(__name__)

CONFIG_NAME = "config.pbtxt"
MODEL_FILENAME = "model.onnx"
CARD_NAME = "model_card.md"


class ModelRepository:
    """Read-only view of a model repository folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def models(self) -> list[str]:
        """Names of the models (folders holding a ``config.pbtxt``), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CONFIG_NAME).is_file())

    def config_path(self, model: str) -> Path:
        return self.root / model / CONFIG_NAME

    def spec(self, model: str) -> ModelSpec:
        """Parsed ``config.pbtxt`` of *model*.

        Raises:
            ModelNotFound: no such model folder.
            ModelConfigError: the configuration does not parse.
        """
        path = self.config_path(model)
        if not path.is_file():
            raise ModelNotFound(f"model {model!r}: no {CONFIG_NAME} in {self.root / model}")
        return read_model_config(path)

    def versions(self, model: str) -> list[int]:
        """Versions present on disk (numeric folders holding the model file), ascending."""
        folder = self.root / model
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.iterdir():
            if entry.name.isdigit() and int(entry.name) > 0 and (entry / MODEL_FILENAME).is_file():
                found.append(int(entry.name))
        return sorted(found)

    def served_versions(self, model: str) -> list[int]:
        """Versions the ``version_policy`` serves, highest first."""
        return self.spec(model).version_policy.select(self.versions(model))

    def resolve_version(self, model: str, version: int | None = None) -> int:
        """The version to run: *version* when given (it must be on disk), else the highest served one.

        Raises:
            ModelNotFound: the model has no such version, or no version at all.
        """
        present = self.versions(model)
        if version is not None:
            if version not in present:
                raise ModelNotFound(f"model {model!r}: version {version} not in {self.root / model} "
                                    f"(present: {present or 'none'})")
            return version
        served = self.served_versions(model)
        if not served:
            raise ModelNotFound(f"model {model!r}: no version folder with {MODEL_FILENAME} in {self.root / model}")
        return served[0]

    def model_path(self, model: str, version: int) -> Path:
        return self.root / model / str(version) / MODEL_FILENAME

    def card_path(self, model: str, version: int) -> Path:
        return self.root / model / str(version) / CARD_NAME

    def next_version(self, model: str) -> int:
        """One above the highest version folder (numeric, with or without a model file)."""
        folder = self.root / model
        numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
        return max(numbers, default=0) + 1


def check_model_name(model: str) -> str:
    """Model names are folder names: letters, digits, ``_`` and ``-`` only.

    Raises:
        ModelConfigError: any other character.
    """
    if not model or not all(c.isalnum() or c in "_-" for c in model):
        raise ModelConfigError(f"model name {model!r}: use letters, digits, '_' and '-' only")
    return model
