"""The plugin registry: an explicit dict of the built-ins plus the ``aiws.plugins`` entry-point group.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."aiws.plugins"]
    my_score = "my_package.plugin:MyScorePlugin"

The object loaded is a :class:`plugins.base.Plugin` subclass (or any callable returning an
instance). A built-in name always wins over an entry point of the same name.
"""
from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

from plugins.base import Plugin
from plugins.errors import PluginError, UnknownPlugin

LOGGER = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "aiws.plugins"

Factory = Callable[[], Plugin[Any, Any]]


def _sepsis() -> Plugin[Any, Any]:
    from plugins.sepsis.plugin import SepsisPlugin

    return SepsisPlugin()


def _pharmacy() -> Plugin[Any, Any]:
    from plugins.pharmacy.plugin import PharmacyPlugin

    return PharmacyPlugin()


def _ed_flow() -> Plugin[Any, Any]:
    from plugins.ed_flow.plugin import EdFlowPlugin

    return EdFlowPlugin()


def _or_planning() -> Plugin[Any, Any]:
    from plugins.or_planning.plugin import OrPlanningPlugin

    return OrPlanningPlugin()


BUILTINS: dict[str, Factory] = {
    "sepsis": _sepsis,
    "pharmacy": _pharmacy,
    "ed_flow": _ed_flow,
    "or_planning": _or_planning,
}


def entry_point_factories() -> dict[str, Factory]:
    """Factories of the installed third-party plugins (``aiws.plugins`` group), loaded lazily."""
    found: dict[str, Factory] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTINS:
            LOGGER.warning("entry point %s (%s) ignored: a built-in plugin has that name", ep.name, ep.value)
            continue

        def load(ep: importlib.metadata.EntryPoint = ep) -> Plugin[Any, Any]:
            obj = ep.load()
            plugin = obj() if callable(obj) else obj
            if not isinstance(plugin, Plugin):
                raise PluginError(f"entry point {ep.name} ({ep.value}): loads {type(plugin).__name__}, "
                                  "not a plugins.base.Plugin")
            return plugin

        found[ep.name] = load
    return found


class Registry:
    """Name → plugin; each plugin is built once (loading its knowledge base or model) and kept."""

    def __init__(self, factories: dict[str, Factory] | None = None) -> None:
        self._factories = dict(BUILTINS) if factories is None else dict(factories)
        if factories is None:
            self._factories.update(entry_point_factories())
        self._built: dict[str, Plugin[Any, Any]] = {}

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Plugin[Any, Any]:
        """The plugin called ``name``. Raises :class:`UnknownPlugin`."""
        if name not in self._built:
            factory = self._factories.get(name)
            if factory is None:
                raise UnknownPlugin(f"plugin {name!r} is not registered (known: {', '.join(self.names())})")
            plugin = factory()
            if plugin.name != name:
                raise PluginError(f"plugin registered as {name!r} calls itself {plugin.name!r}")
            self._built[name] = plugin
        return self._built[name]
