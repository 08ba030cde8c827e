"""The committed model repository: every config.pbtxt parses and matches its ONNX file; cards are complete."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.runtime import ModelRepository
from models.runtime.validate import check_against_onnx

REPO = Path(__file__).resolve().parents[3] / "triton_repo"
CARD_KEYS = {"model", "version", "date", "intended_use", "trained_on", "metrics", "limitations", "provenance"}


def test_repository_holds_the_lung_model() -> None:
    assert "lung_nodules" in ModelRepository(REPO).models()


@pytest.mark.parametrize("model", ModelRepository(REPO).models())
def test_config_matches_every_version(model: str) -> None:
    repo = ModelRepository(REPO)
    spec = repo.spec(model)
    assert spec.platform == "onnxruntime_onnx" and not spec.backend
    assert spec.max_batch_size > 0 and spec.dynamic_batching and spec.instance_count >= 1
    versions = repo.versions(model)
    assert versions, f"{model}: no version"
    for version in versions:
        path = repo.model_path(model, version)
        check_against_onnx(spec, path)
        assert path.stat().st_size < 20 * 2**20, f"{path}: over 20 MB"


@pytest.mark.parametrize("model", ModelRepository(REPO).models())
def test_every_version_has_a_model_card(model: str) -> None:
    repo = ModelRepository(REPO)
    for version in repo.versions(model):
        card_md = repo.card_path(model, version)
        card = json.loads(card_md.with_name("model_card.json").read_text())
        missing = CARD_KEYS - set(card)
        assert not missing, f"{model} v{version}: card lacks {sorted(missing)}"
        assert card["version"] == version and card["model"] == model
        digest = card["provenance"]["training_config_sha256"]
        assert len(digest) >= 12 and all(c in "0123456789abcdef" for c in digest), digest
        assert "## Intended use" in card_md.read_text() and "## Limitations" in card_md.read_text()
