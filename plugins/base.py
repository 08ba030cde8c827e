"""The plugin interface: a name, a version, pydantic input and output models, and ``run``.

A plugin reads its flat input model. FHIR R4 Bundles and CSV rows are first turned into the same
flat dictionaries (``from_fhir``, ``from_csv_rows``) and then validated by the same model, so the
three input forms give the same result by construction.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from plugins.errors import FieldProblem, InvalidInput

LOGGER = logging.getLogger(__name__)

NOT_COMPUTED = "not computed"


class InputModel(BaseModel):
    """Base of every plugin input: unknown keys are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class PluginOutput(BaseModel):
    """Fields every plugin output carries: who computed it, with which rules or model, and why."""

    plugin: str
    version: str
    ref: str | None = None  # the caller's record reference, echoed (never logged)
    rules: list[str]
    explanation: list[str]


InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=PluginOutput)


def field_error(field: str, rule: str) -> PydanticCustomError:
    """A validation error raised from a model validator that still names the field at fault."""
    return PydanticCustomError("field_rule", "{field}: {rule}", {"field": field, "rule": rule})


def nest_dotted(row: dict[str, Any]) -> dict[str, Any]:
    """``{"patient.age": 70}`` → ``{"patient": {"age": 70}}``; empty CSV cells are dropped (missing)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.strip() if isinstance(value, str) else value
    return out


class Plugin(ABC, Generic[InT, OutT]):
    """One tabular decision tool. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    version: ClassVar[str]
    summary: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[PluginOutput]]
    #: input forms accepted: "json" (flat), "fhir" (R4 Bundle), "csv" (batch)
    formats: ClassVar[frozenset[str]] = frozenset({"json", "fhir", "csv"})
    #: a CSV file is a batch of records (one output each), or one input (``False``, e.g. a history)
    csv_is_batch: ClassVar[bool] = True

    @abstractmethod
    def run(self, data: InT) -> OutT:
        """Compute the output for one validated input. Raises :class:`InvalidInput` on a rule the
        input model cannot express."""

    def run_batch(self, items: Sequence[InT]) -> list[OutT]:
        """Outputs for several inputs, in the input order (a plugin may add cross-record ranks)."""
        return [self.run(item) for item in items]

    def from_fhir(self, bundle: Any) -> list[dict[str, Any]]:
        """Flat input dictionaries (one per patient/case) from a parsed FHIR R4 Bundle."""
        raise InvalidInput(self.name, [FieldProblem("resourceType", f"{self.name} does not read FHIR Bundles")])

    def from_csv_rows(self, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Flat input dictionaries from CSV rows; by default one record per row, dotted columns nest."""
        return [nest_dotted(row) for row in rows]

    def describe(self) -> dict[str, Any]:
        """Name, version, summary, accepted formats and the JSON schema of the input."""
        return {"name": self.name, "version": self.version, "summary": self.summary,
                "formats": sorted(self.formats), "input_schema": self.input_model.model_json_schema()}
