"""Fixtures: a model repository of tiny ONNX models (see tiny_onnx.py)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiny_onnx import conv_onnx, make_repository, pointwise_onnx


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repository(tmp_path / "repo")


@pytest.fixture
def add_version() -> Callable[[Path, str, int], Path]:
    def add(root: Path, name: str, version: int) -> Path:
        folder = root / name / str(version)
        folder.mkdir(parents=True)
        if name == "pointwise":
            pointwise_onnx(folder / "model.onnx", scale=-1.0, bias=0.0)
        else:
            conv_onnx(folder / "model.onnx", seed=version)
        return folder
    return add
