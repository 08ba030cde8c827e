"""The pipeline registry: an explicit dict of name -> factory. Pipelines live in :mod:`models`."""
from __future__ import annotations

from collections.abc import Callable

from aiws.config import Config
from aiws.errors import ConfigError
from imaging.backend import ArrayBackend
from models.pipeline import Pipeline

#: (configuration, array backend chosen at the worker's start-up) -> pipeline.
PipelineFactory = Callable[[Config, ArrayBackend], Pipeline]


def _echo_summary(config: Config, backend: ArrayBackend) -> Pipeline:
    from aiws.pipelines.echo_summary import EchoSummary

    return EchoSummary()


def _mammography(config: Config, backend: ArrayBackend) -> Pipeline:
    from models.mammography.pipeline import MammographyPipeline
    from models.runtime import RuntimeSettings

    return MammographyPipeline(RuntimeSettings(**config.runtime.model_dump()))


def _coronary_ct(config: Config, backend: ArrayBackend) -> Pipeline:
    from models.coronary_ct.pipeline import CoronaryCalciumPipeline, CoronarySettings
    from models.runtime import RuntimeSettings, make_runtime

    runtime = make_runtime(RuntimeSettings(**config.runtime.model_dump()))
    return CoronaryCalciumPipeline(runtime, CoronarySettings.from_mapping(config.pipelines.get("coronary_ct", {})))


def _cardiac_mri(config: Config, backend: ArrayBackend) -> Pipeline:
    from models.cardiac_mri.pipeline import CardiacFunctionPipeline, CardiacSettings
    from models.runtime import RuntimeSettings, make_runtime

    runtime = make_runtime(RuntimeSettings(**config.runtime.model_dump()))
    return CardiacFunctionPipeline(runtime, CardiacSettings.from_mapping(config.pipelines.get("cardiac_mri", {})))


def _lung_nodules(config: Config, backend: ArrayBackend) -> Pipeline:
    from models.lung_nodules.pipeline import LungNodulePipeline, LungSettings
    from models.runtime import RuntimeSettings, make_runtime

    runtime = make_runtime(RuntimeSettings(**config.runtime.model_dump()))
    return LungNodulePipeline(runtime, LungSettings.from_mapping(config.pipelines.get("lung_nodules", {})), backend)


PIPELINES: dict[str, PipelineFactory] = {
    "echo_summary": _echo_summary,
    "lung_nodules": _lung_nodules,
    "mammography": _mammography,
    "coronary_ct": _coronary_ct,
    "cardiac_mri": _cardiac_mri,
}


def check_routes(config: Config) -> None:
    """Every route names a known pipeline, and ``[pipelines.lung_nodules]`` is valid (its tag rules and the
    replaced site-wide ``risk``: refused at start-up, not by each job).

    Raises:
        ConfigError: naming the route index and the known pipelines, or the lung setting.
    """
    for i, route in enumerate(config.routes):
        if route.pipeline not in PIPELINES:
            known = ", ".join(sorted(PIPELINES))
            raise ConfigError(f"routes[{i}].pipeline: unknown pipeline {route.pipeline!r} (known: {known})")
    if "lung_nodules" in config.pipelines:
        from models.errors import ModelError
        from models.lung_nodules.pipeline import LungSettings

        try:
            LungSettings.from_mapping(config.pipelines["lung_nodules"])
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
