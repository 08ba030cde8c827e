"""The pipeline registry: an explicit dict of name -> factory. Pipelines live in :mod:`models`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiws.config import Config
from aiws.errors import ConfigError
from imaging.backend import ArrayBackend
from models.pipeline import Pipeline

#: (configuration, array backend chosen at the worker's start-up, parsed ``[pipelines.<name>]``) -> pipeline.
Build = Callable[[Config, ArrayBackend, Any], Pipeline]
#: (configuration, array backend) -> pipeline, its settings parsed from the configuration.
PipelineFactory = Callable[[Config, ArrayBackend], Pipeline]


@dataclass(frozen=True)
class PipelineEntry:
    """A registered pipeline: its class (imported when first needed; it declares ``settings_model`` and
    ``prior_spec``) and how to build it from the configuration and its parsed settings."""

    name: str
    pipeline_class: Callable[[], type[Pipeline]]
    build: Build

    def settings(self, config: Config) -> Any:
        """``[pipelines.<name>]`` parsed by the pipeline's settings model (an absent table: its defaults).

        Raises:
            ConfigError: naming the key and the rule.
        """
        from models.errors import ModelError

        raw = config.pipelines.get(self.name, {})
        try:
            return self.pipeline_class().settings_model.from_mapping(raw)
        except (ModelError, ValueError, TypeError) as exc:
            text = str(exc)
            prefix = f"pipelines.{self.name}"
            raise ConfigError(text if text.startswith(prefix) else f"{prefix}: {text}") from None

    def __call__(self, config: Config, backend: ArrayBackend) -> Pipeline:
        return self.build(config, backend, self.settings(config))


def _runtime(config: Config) -> Any:
    from models.runtime import RuntimeSettings, make_runtime

    return make_runtime(RuntimeSettings(**config.runtime.model_dump()))


def _echo_summary_class() -> type[Pipeline]:
    from aiws.pipelines.echo_summary import EchoSummary

    return EchoSummary


def _lung_nodules_class() -> type[Pipeline]:
    from models.lung_nodules.pipeline import LungNodulePipeline

    return LungNodulePipeline


def _mammography_class() -> type[Pipeline]:
    from models.mammography.pipeline import MammographyPipeline

    return MammographyPipeline


def _coronary_ct_class() -> type[Pipeline]:
    from models.coronary_ct.pipeline import CoronaryCalciumPipeline

    return CoronaryCalciumPipeline


def _cardiac_mri_class() -> type[Pipeline]:
    from models.cardiac_mri.pipeline import CardiacFunctionPipeline

    return CardiacFunctionPipeline


def _entries() -> dict[str, PipelineEntry]:
    def echo(config: Config, backend: ArrayBackend, settings: Any) -> Pipeline:
        return _echo_summary_class()()  # type: ignore[call-arg]

    def lung(config: Config, backend: ArrayBackend, settings: Any) -> Pipeline:
        return _lung_nodules_class()(_runtime(config), settings, backend)  # type: ignore[call-arg]

    def with_runtime(load: Callable[[], type[Pipeline]]) -> Build:
        return lambda config, backend, settings: load()(_runtime(config), settings)  # type: ignore[call-arg]

    return {
        "echo_summary": PipelineEntry("echo_summary", _echo_summary_class, echo),
        "lung_nodules": PipelineEntry("lung_nodules", _lung_nodules_class, lung),
        "mammography": PipelineEntry("mammography", _mammography_class, with_runtime(_mammography_class)),
        "coronary_ct": PipelineEntry("coronary_ct", _coronary_ct_class, with_runtime(_coronary_ct_class)),
        "cardiac_mri": PipelineEntry("cardiac_mri", _cardiac_mri_class, with_runtime(_cardiac_mri_class)),
    }


#: Every pipeline by name; ``PIPELINES[name](config, backend)`` builds one with its parsed settings.
PIPELINES: dict[str, PipelineEntry] = _entries()


def check_routes(config: Config) -> None:
    """Every route names a known pipeline, every ``[pipelines.<name>]`` names one, and the settings of
    every pipeline in use (routed or configured) parse with that pipeline's settings model: refused at
    start-up, not by each job.

    Raises:
        ConfigError: naming the route index and the known pipelines, or the setting and its rule.
    """
    known = ", ".join(sorted(PIPELINES))
    for i, route in enumerate(config.routes):
        if route.pipeline not in PIPELINES:
            raise ConfigError(f"routes[{i}].pipeline: unknown pipeline {route.pipeline!r} (known: {known})")
    for name in config.pipelines:
        if name not in PIPELINES:
            raise ConfigError(f"pipelines.{name}: unknown pipeline (known: {known})")
    for name in sorted({r.pipeline for r in config.routes} | set(config.pipelines)):
        PIPELINES[name].settings(config)


def settings_errors(config: Config) -> list[str]:
    """Every problem of the ``[pipelines.*]`` tables at once (``aiws config check``): unknown names and
    settings that do not parse, one line each."""
    errors = []
    for name in config.pipelines:
        if name not in PIPELINES:
            errors.append(f"pipelines.{name}: unknown pipeline (known: {', '.join(sorted(PIPELINES))})")
            continue
        try:
            PIPELINES[name].settings(config)
        except ConfigError as exc:
            errors.append(str(exc))
    return errors
