"""The pipeline contract: every registered pipeline declares its settings model and its prior needs, its
``[pipelines.<name>]`` is parsed and refused at start-up (mammography included), and mammography is built
with the shared runtime factory and its settings."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import CTImageStorage

from aiws.config import config_from_mapping
from aiws.errors import ConfigError
from aiws.pipelines import PIPELINES, check_routes, settings_errors
from imaging.backend import ArrayBackend
from models.pipeline import NoSettings, PriorSpec

REPO = Path(__file__).resolve().parents[2] / "triton_repo"


def test_every_pipeline_declares_settings_and_priors() -> None:
    declared = {name: entry.pipeline_class() for name, entry in PIPELINES.items()}
    assert set(declared) == {"echo_summary", "lung_nodules", "mammography", "coronary_ct", "cardiac_mri"}
    priors = {name: cls.prior_spec for name, cls in declared.items()}
    assert priors["lung_nodules"] == PriorSpec("CT", (CTImageStorage,))
    assert [name for name, spec in priors.items() if spec is not None] == ["lung_nodules"]
    assert declared["echo_summary"].settings_model is NoSettings
    for cls in declared.values():
        assert callable(cls.settings_model.from_mapping)


@pytest.mark.parametrize(("pipeline", "settings", "named"), [
    ("mammography", {"model_versio": 2}, r"pipelines.mammography: unknown keys \['model_versio'\]"),
    ("mammography", {"model_version": 0}, "pipelines.mammography.model_version: 0 is not a positive integer"),
    ("coronary_ct", {"acquisition_check": "ignore"}, "pipelines.coronary_ct.acquisition_check: 'ignore'"),
    ("cardiac_mri", {"slect": {}}, r"pipelines.cardiac_mri: unknown keys \['slect'\]"),
    ("echo_summary", {"colour": "red"}, "pipelines.echo_summary: this pipeline takes no settings"),
    ("lung_nodules", {"risk": "high"}, "pipelines.lung_nodules.risk: no longer a site-wide switch"),
])
def test_bad_settings_stop_the_start_for_every_pipeline(pipeline: str, settings: dict, named: str) -> None:
    config = config_from_mapping({"routes": [{"pipeline": pipeline}], "pipelines": {pipeline: settings}})
    with pytest.raises(ConfigError, match=named):
        check_routes(config)


def test_settings_of_an_unrouted_pipeline_are_checked_too() -> None:
    config = config_from_mapping({"routes": [{"pipeline": "echo_summary"}],
                                  "pipelines": {"mammography": {"model_version": "latest"}}})
    with pytest.raises(ConfigError, match="pipelines.mammography.model_version"):
        check_routes(config)


def test_unknown_pipeline_table_is_refused() -> None:
    config = config_from_mapping({"pipelines": {"lungs": {}}})
    with pytest.raises(ConfigError, match="pipelines.lungs: unknown pipeline"):
        check_routes(config)


def test_config_check_lists_every_settings_problem() -> None:
    config = config_from_mapping({"pipelines": {"lungs": {}, "cardiac_mri": {"x": 1}, "mammography": {}}})
    errors = settings_errors(config)
    assert len(errors) == 2
    assert errors[0].startswith("pipelines.lungs: unknown pipeline")
    assert errors[1] == "pipelines.cardiac_mri: unknown keys ['x']"


def test_mammography_takes_its_settings_and_the_shared_runtime() -> None:
    config = config_from_mapping({"runtime": {"model_repository": str(REPO)},
                                  "pipelines": {"mammography": {"model_version": 1}}})
    pipeline = PIPELINES["mammography"](config, ArrayBackend.numpy())
    assert pipeline.settings.model_version == 1  # type: ignore[attr-defined]
    assert pipeline.runtime.resolve_version("mammo_detector", 1) == 1  # type: ignore[attr-defined]
    assert pipeline.runtime.repository.root == REPO  # type: ignore[attr-defined]
