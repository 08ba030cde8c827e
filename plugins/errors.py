"""Errors raised by the plugins: one small hierarchy, messages that name the field and the rule."""
from __future__ import annotations

from dataclasses import dataclass


class PluginError(Exception):
    """Base class of every error raised by :mod:`plugins`."""


class UnknownPlugin(PluginError, KeyError):
    """No plugin of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: its dotted path (``prescriptions[2].dose_mg``), the rule broken, the value."""

    field: str
    rule: str
    value: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "rule": self.rule, "value": self.value}

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value})"
        return f"{self.field}: {self.rule}{shown}"


class InvalidInput(PluginError, ValueError):
    """The input breaks a rule; ``problems`` names every field at fault (HTTP 422, CLI exit 2)."""

    def __init__(self, plugin: str, problems: list[FieldProblem]) -> None:
        self.plugin = plugin
        self.problems = problems
        lines = "; ".join(str(p) for p in problems[:10])
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{plugin}: invalid input: {lines}{more}")


class KnowledgeBaseError(PluginError):
    """A knowledge-base or model file is malformed; the message names the file, row and column."""


class SolverError(PluginError):
    """An optimisation could not be set up (not raised for infeasible instances, which are reported)."""
