"""bench/_e2e.py's version pinning (``bench/infer.py --compare-previous``): the pinned copy of a model repository
serves the pinned version to the runtime the service uses, and the repository it was made from is not changed.
No service is started."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from models.runtime.errors import ModelNotFound
from models.runtime.model_config import read_model_config
from models.runtime.ort import OnnxRuntime
from models.runtime.promote import active_version
from models.runtime.repository import ModelRepository

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # after the project: bench/plugins.py must not shadow the plugins package

from _e2e import changed_models, pinned_repository  # noqa: E402

SOURCE = ROOT / "triton_repo"
LUNG = "lung_nodules"  # six versions shipped; its classifier's versions are named by the lung_nodules version


def _lung_pair() -> tuple[int, int]:
    pairs = changed_models(ModelRepository(SOURCE), "lung_nodules")
    assert set(pairs) == {LUNG}  # the classifier (version_policy all) is not pinned
    return pairs[LUNG]


def test_pinned_copy_serves_the_previous_version(tmp_path: Path) -> None:
    previous, latest = _lung_pair()
    assert previous < latest
    before = {p: p.read_bytes() for p in SOURCE.glob("*/config.pbtxt")}
    repo = pinned_repository(SOURCE, tmp_path / "repo", {LUNG: previous})

    spec = read_model_config(repo.config_path(LUNG))
    assert (spec.version_policy.kind, spec.version_policy.versions) == ("specific", (previous,))
    source_spec = ModelRepository(SOURCE).spec(LUNG)
    assert spec == type(spec)(**{**source_spec.__dict__, "version_policy": spec.version_policy})
    assert repo.versions(LUNG) == ModelRepository(SOURCE).versions(LUNG)
    assert repo.resolve_version(LUNG) == previous
    assert active_version(repo, LUNG) == previous  # what the console's Models page shows as active
    assert repo.resolve_version("lung_nodule_classifier") == ModelRepository(SOURCE).resolve_version(
        "lung_nodule_classifier")
    assert (repo.root / "mammo_detector").is_symlink()

    ct = np.random.default_rng(0).uniform(0.0, 1.0, (1, 1, 96, 96, 96)).astype(np.float32)
    with OnnxRuntime(repo, "cpu", 1) as pinned, OnnxRuntime(ModelRepository(SOURCE), "cpu", 1) as source:
        got = pinned.infer(LUNG, {"ct": ct})
        want = source.infer(LUNG, {"ct": ct}, version=previous)
    assert got.version == previous
    np.testing.assert_array_equal(got.outputs["nodule_prob"], want.outputs["nodule_prob"])
    assert {p: p.read_bytes() for p in SOURCE.glob("*/config.pbtxt")} == before


def test_pinned_copy_serves_the_latest_version(tmp_path: Path) -> None:
    _previous, latest = _lung_pair()
    repo = pinned_repository(SOURCE, tmp_path / "repo", {LUNG: latest})
    assert repo.served_versions(LUNG) == [latest]


def test_a_version_not_on_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="version 999 is not in the repository"):
        pinned_repository(SOURCE, tmp_path / "repo", {LUNG: 999})
    assert not (tmp_path / "repo").exists()


def test_a_model_with_one_version_is_not_compared(tmp_path: Path) -> None:
    model = "cardiac_cine_segmenter"
    shipped = ModelRepository(SOURCE).resolve_version(model)
    source = tmp_path / "source"
    (source / model).mkdir(parents=True)
    (source / model / "config.pbtxt").write_bytes((SOURCE / model / "config.pbtxt").read_bytes())
    (source / model / "1").symlink_to(SOURCE / model / str(shipped), target_is_directory=True)
    assert changed_models(ModelRepository(source), "cardiac_mri") == {}
    (source / model / "3").symlink_to(SOURCE / model / str(shipped), target_is_directory=True)
    assert changed_models(ModelRepository(source), "cardiac_mri") == {model: (1, 3)}
    assert changed_models(ModelRepository(source), "echo_summary") == {}
