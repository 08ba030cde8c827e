"""``aiws rescore`` end to end: the shipped network's candidates on tuning phantoms -> second stage in the card.

The run folder is started from the shipped version 1 by ``aiws rescore --from-version 1`` (``export/`` and
``run.json`` as ``aiws train`` leaves them), so the real network gives real candidates on real phantoms; a
small candidate classifier trained here (``aiws train lung_nodule_classifier``) gives them its logit.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from aiws.cli import main
from factories import TINY_CLASSIFIER_TOML
from models.lung_nodules.inference import candidate_settings, detect_nodules, rescorer_of
from models.lung_nodules.rescore import FEATURES
from models.runtime.ort import OnnxRuntime
from models.runtime.repository import ModelRepository
from training.lung_nodules.dataset import write_phantom_dataset
from training.lung_nodules.export import CONVENTIONS
from training.lung_nodules.phantom import PhantomConfig, generate_phantom

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[3] / "triton_repo" / "lung_nodules"
SMALL = PhantomConfig(z_extent_mm=60.0, nodules=(3, 4), max_matrix=256)




@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rescore")
    folder = root / "run"
    write_phantom_dataset(root / "tune", [20100, 20101], SMALL)
    write_phantom_dataset(root / "classifier-data", [30100, 30101], PhantomConfig(z_extent_mm=40.0, max_matrix=110))
    (root / "classifier.toml").write_text(TINY_CLASSIFIER_TOML)
    assert main(["train", "lung_nodule_classifier", "--data", str(root / "classifier-data"), "--config",
                 str(root / "classifier.toml"), "--run", "c1", "--runs-dir", str(root), "--no-progress",
                 "--candidates-from", "1", "--repository", str(SHIPPED.parent)]) == 0
    code = main(["rescore", str(folder), "--data", str(root / "tune"), "--threads", "2", "--from-version", "1",
                 "--repository", str(SHIPPED.parent), "--blob-candidates", "5", "--grow-open-mm", "2.5",
                 "--classifier", str(root / "c1"), "--max-fp-per-scan", "0.25"])
    assert code == 0
    return {"root": root, "run": folder}


def test_from_version_starts_a_run_from_the_published_network(run: dict[str, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    candidate = run["run"] / "export" / "lung_nodules"
    assert (candidate / "1" / "model.onnx").read_bytes() == (SHIPPED / "1" / "model.onnx").read_bytes()
    assert (candidate / "config.pbtxt").read_text() == (SHIPPED / "config.pbtxt").read_text()
    card = json.loads((candidate / "1" / "model_card.json").read_text())
    assert card["provenance"]["derived_from"] == {"model": "lung_nodules", "version": 1}
    assert "Same network as version 1" in card["summary"]
    assert card["conventions"] == CONVENTIONS  # today's measurement rules, not those of the day it shipped
    assert json.loads((run["run"] / "run.json").read_text())["training_seeds"] == list(range(40))
    assert main(["rescore", str(run["run"]), "--data", str(run["root"] / "tune"), "--from-version", "1"]) == 1
    assert "exists" in capsys.readouterr().err
    missing = run["root"] / "no-such-version"
    assert main(["rescore", str(missing), "--data", str(run["root"] / "tune"), "--from-version", "99",
                 "--repository", str(SHIPPED.parent)]) == 1
    assert "version 99 not in" in capsys.readouterr().err and not missing.exists()
    assert main(["rescore", str(missing), "--data", str(run["root"] / "tune"), "--from-version", "1",
                 "--repository", str(SHIPPED.parent), "--blob-candidates", "-1"]) == 1
    assert "--blob-candidates -1: must be >= 0" in capsys.readouterr().err and not missing.exists()
    assert main(["rescore", str(missing), "--data", str(run["root"] / "tune"), "--from-version", "1",
                 "--repository", str(SHIPPED.parent), "--grow-open-mm", "-1"]) == 1
    assert "--grow-open-mm -1.0: must be >= 0" in capsys.readouterr().err and not missing.exists()
    assert main(["rescore", str(missing), "--data", str(run["root"] / "tune"), "--from-version", "1",
                 "--repository", str(SHIPPED.parent), "--max-fp-per-scan", "0"]) == 1
    assert "--max-fp-per-scan 0.0: must be > 0" in capsys.readouterr().err and not missing.exists()


def test_rescore_writes_the_second_stage_into_the_candidate_card(run: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    card = json.loads((run["run"] / "export" / "lung_nodules" / "1" / "model_card.json").read_text())
    stage = card["rescore"]
    assert stage["features"] == list(FEATURES) and len(stage["weights"]) == len(FEATURES)
    assert card["classifier"] == {"model": "lung_nodule_classifier", "version": 1, "run": "c1", "published": False}
    assert stage["trained_on"]["classifier"] == card["classifier"] and "| classifier_logit |" in (
        run["run"] / "export" / "lung_nodules" / "1" / "model_card.md").read_text()
    assert "candidate classifier (lung_nodule_classifier version 1)" in card["summary"]
    trained = json.loads((run["root"] / "c1" / "run.json").read_text())
    assert trained["candidates_from"] == {"repository": str(SHIPPED.parent.resolve()), "model": "lung_nodules",
                                          "version": 1}  # the network's candidates were among its points
    copied = run["run"] / "export" / "lung_nodule_classifier" / "1" / "model.onnx"
    assert copied.read_bytes() == (run["root"] / "c1" / "export" / "lung_nodule_classifier" / "1" /
                                   "model.onnx").read_bytes()
    assert stage["trained_on"]["seeds"] == [20100, 20101] and stage["trained_on"]["on_nodules"] >= 1
    assert card["postprocess"]["min_score"] == stage["trained_on"]["threshold"] == card["operating_point"][
        "score_threshold"]
    assert card["operating_point"]["chosen_for_max_fp_per_scan"] == stage["trained_on"]["max_fp_per_scan"] == 0.25
    markdown = (run["run"] / "export" / "lung_nodules" / "1" / "model_card.md").read_text()
    assert "## Second stage (false-positive reduction)" in markdown and "| elongation |" in markdown
    assert json.loads((run["run"] / "run.json").read_text())["rescore_seeds"] == [20100, 20101]
    runtime = OnnxRuntime(ModelRepository(run["run"] / "export"), device="cpu")
    assert rescorer_of(runtime, "lung_nodules", 1) is not None
    assert card["postprocess"]["blob_candidates"] == stage["trained_on"]["blob_candidates"] == 5
    assert "dot-enhancement filter" in card["summary"] and "| dot |" in markdown
    assert card["postprocess"]["grow_open_mm"] == stage["trained_on"]["grow_open_mm"] == 2.5
    assert "a ball of 2.5 mm radius" in card["summary"]


def test_tuning_and_training_seeds_are_kept_out_of_evaluation(run: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "tune")]) == 1
    assert "fit the second stage of" in capsys.readouterr().err
    write_phantom_dataset(run["root"] / "trained", [7], PhantomConfig(z_extent_mm=20.0, max_matrix=96))
    assert main(["rescore", str(run["run"]), "--data", str(run["root"] / "trained")]) == 1
    assert "were used to train" in capsys.readouterr().err


def test_evaluation_and_service_score_candidates_by_the_second_stage(run: dict[str, Path]) -> None:
    write_phantom_dataset(run["root"] / "eval", [20200], SMALL)
    assert main(["evaluate", str(run["run"]), "--data", str(run["root"] / "eval"), "--threads", "2"]) == 0
    result = json.loads((run["run"] / "evaluation.json").read_text())
    card = json.loads((run["run"] / "export" / "lung_nodules" / "1" / "model_card.json").read_text())
    assert result["operating_point"]["threshold"] == card["postprocess"]["min_score"]
    runtime = OnnxRuntime(ModelRepository(run["run"] / "export"), device="cpu", intra_op_threads=2)
    rescorer = rescorer_of(runtime, "lung_nodules", 1)
    assert rescorer is not None
    phantom = generate_phantom(20200, SMALL)
    everything = replace(candidate_settings(runtime, "lung_nodules", 1), min_score=0.0)
    found = detect_nodules(runtime, phantom.hu, phantom.grid, settings=everything).nodules
    assert found and all(n.score == pytest.approx(rescorer.score(n.features)) for n in found)
    assert all("classifier_logit" in n.features for n in found)  # the service runs the classifier too
    assert [n.score for n in found] == sorted((n.score for n in found), reverse=True)
    assert {n.features["blob"] for n in found} == {0.0, 1.0}  # the network's candidates and dot-filter blobs
    by_peak = detect_nodules(runtime, phantom.hu, phantom.grid, settings=everything, rescore=False).nodules
    assert all(n.score == n.peak_probability and not n.features for n in by_peak)  # nothing measured in vain
    # scored by the network alone there are no blobs (they have no network score)
    assert sorted(n.peak_probability for n in found if not n.features["blob"]) == sorted(n.score for n in by_peak)


def test_a_derived_run_exports_as_the_next_version_with_the_same_weights(run: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(SHIPPED, repo / "lung_nodules")
    latest = ModelRepository(repo).resolve_version("lung_nodules")
    assert main(["export", str(run["run"]), "--repository", str(repo)]) == 0
    assert ModelRepository(repo).resolve_version("lung_nodules") == latest + 1
    folder = repo / "lung_nodules" / str(latest + 1)
    assert (folder / "model.onnx").read_bytes() == (SHIPPED / "1" / "model.onnx").read_bytes()
    card = json.loads((folder / "model_card.json").read_text())
    published = ModelRepository(repo).versions("lung_nodule_classifier")
    assert card["classifier"] == {"model": "lung_nodule_classifier", "version": published[-1]}  # published with it
    assert (repo / "lung_nodule_classifier" / str(published[-1]) / "model.onnx").read_bytes() == (
        run["run"] / "export" / "lung_nodule_classifier" / "1" / "model.onnx").read_bytes()
    assert card["provenance"]["derived_from"]["version"] == 1 and "rescore" in card
    assert card["metrics"]["evaluation"]["operating_point"]["threshold"] == card["postprocess"]["min_score"]


def test_a_version_derived_from_a_derived_one_names_only_its_source(tmp_path: Path) -> None:
    from training.lung_nodules.export import run_from_version

    source = json.loads((SHIPPED / "3" / "model_card.json").read_text())
    assert "Same network as version 2" in source["summary"]  # version 3 was derived from version 2
    assert run_from_version(SHIPPED.parent, "lung_nodules", 3, tmp_path / "run") == 3
    card = json.loads((tmp_path / "run" / "export" / "lung_nodules" / "1" / "model_card.json").read_text())
    assert card["summary"].count("Same network as version") == 1 and "Same network as version 3" in card["summary"]


def test_a_derived_run_keeps_the_seeds_of_its_source_second_stage(tmp_path: Path) -> None:
    from training.lung_nodules.evaluate import EvaluationError, _check_seeds
    from training.lung_nodules.export import run_from_version

    source = json.loads((SHIPPED / "4" / "model_card.json").read_text())
    tuned = source["rescore"]["trained_on"]["seeds"]
    run_from_version(SHIPPED.parent, "lung_nodules", 4, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["rescore_seeds"] == tuned
    data = tmp_path / "tune"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"training": [], "phantom": {"seeds": tuned[:2]}}))
    with pytest.raises(EvaluationError, match="fit the second stage"):
        _check_seeds(tmp_path / "run", data)


def test_a_failed_fit_leaves_the_run_as_it_was(run: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    card_path = run["run"] / "export" / "lung_nodules" / "1" / "model_card.json"
    before = card_path.read_text()
    write_phantom_dataset(run["root"] / "no-nodules", [20300], PhantomConfig(z_extent_mm=20.0, nodules=(0, 0),
                                                                              max_matrix=96))
    assert main(["rescore", str(run["run"]), "--data", str(run["root"] / "no-nodules"), "--classifier", "none"]) == 1
    assert "need candidates on nodules" in capsys.readouterr().err
    assert card_path.read_text() == before  # the classifier is still there, with the second stage fitted on it
    assert (run["run"] / "export" / "lung_nodule_classifier" / "1" / "model.onnx").is_file()
    assert main(["rescore", str(run["run"]), "--data", str(run["root"] / "tune"), "--classifier", "x"]) == 1
    assert "not a classifier run" in capsys.readouterr().err


def test_without_a_classifier_the_second_stage_has_no_classifier_feature() -> None:
    from training.lung_nodules.rescore import features_of

    assert "classifier_logit" not in features_of({}) and features_of({"classifier": {}}) == FEATURES
