"""The plugin interface: a name, a version, pydantic input and output models, and ``run``.

A plugin reads its flat input model. FHIR R4 Bundles and CSV rows are first turned into the same
flat dictionaries (``from_fhir``, ``from_csv_rows``) and then validated by the same model, so the
three input forms give the same result by construction.

Every output also says what it is and where it comes from: ``disclaimer`` (decision support, its
limits) and ``provenance`` (the statistical model, its version and what it was trained on; the
knowledge base, its version and review status). A plugin declares both (:attr:`Plugin.disclaimer`,
:meth:`Plugin.provenance`); :func:`plugins.runner.run_plugin`, the one path of the API and the
CLI, stamps them on every output, so a plugin's ``run`` need not repeat them.
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


#: What every plugin result is, unless a plugin says more.
DEFAULT_DISCLAIMER = ("Decision support computed by software from the data sent; not a diagnosis, a prescription "
                      "or an order. A qualified clinician reviews every result before acting on it.")


class Provenance(BaseModel):
    """Where a result comes from. ``None`` = not applicable (e.g. no statistical model, rules only).

    *model*, *model_version*, *trained_on*: the statistical model and what it learnt from;
    *knowledge_base*, *knowledge_base_version*: the rule data used; *review_status*: who has (not)
    validated them, in the words of the model card or the knowledge base's manifest.
    """

    model: str | None = None
    model_version: str | None = None
    trained_on: str | None = None
    knowledge_base: str | None = None
    knowledge_base_version: str | None = None
    review_status: str | None = None

    def text(self) -> str:
        """One line of the fields that apply: ``model: … 1.0.0; trained on: …; review status: …``."""
        parts = []
        if self.model:
            parts.append(f"model: {self.model} {self.model_version or ''}".rstrip())
        if self.trained_on:
            parts.append(f"trained on: {self.trained_on}")
        if self.knowledge_base:
            parts.append(f"knowledge base: {self.knowledge_base} {self.knowledge_base_version or ''}".rstrip())
        if self.review_status:
            parts.append(f"review status: {self.review_status}")
        return "; ".join(parts)


class PluginOutput(BaseModel):
    """Fields every plugin output carries: who computed it, with which rules or model, and why;
    ``disclaimer`` and ``provenance`` are stamped by the runner from the plugin's declaration."""

    plugin: str
    version: str
    ref: str | None = None  # the caller's record reference, echoed (never logged)
    disclaimer: str | None = None
    provenance: Provenance | None = None
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
    #: what a result is and is not (shown with every output, by the API, the CLI and the status page)
    disclaimer: ClassVar[str] = DEFAULT_DISCLAIMER

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

    def provenance(self) -> Provenance:
        """The model and knowledge base behind the results. A plugin with a model or a knowledge
        base overrides this; the default says that nothing was declared."""
        return Provenance(review_status=f"not declared by the plugin {self.name}")

    def stamp(self, output: OutT) -> OutT:
        """*output* with this plugin's disclaimer and provenance."""
        return output.model_copy(update={"disclaimer": self.disclaimer, "provenance": self.provenance()})

    def describe(self) -> dict[str, Any]:
        """Name, version, summary, disclaimer, provenance, accepted formats and the input's JSON schema."""
        return {"name": self.name, "version": self.version, "summary": self.summary,
                "disclaimer": self.disclaimer, "provenance": self.provenance().model_dump(),
                "formats": sorted(self.formats), "input_schema": self.input_model.model_json_schema()}
