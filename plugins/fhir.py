"""FHIR R4 Bundles, parsed with ``fhir.resources`` (its ``R4B`` models read R4 JSON for the resources
used here: Bundle, Patient, Observation, MedicationRequest, AllergyIntolerance, Encounter, Condition;
the package's top level is R5, whose MedicationRequest differs).

Helpers here are plugin-agnostic: resources by type, codes, quantities with UCUM units, times.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from plugins.errors import FieldProblem, InvalidInput

LOGGER = logging.getLogger(__name__)

LOINC = "http://loinc.org"
ATC_SYSTEMS = ("http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73")
#: Observations coded in this system carry a plugin's flat key as their code (``spo2_scale``,
#: ``on_respiratory_support`` …): the way to send measures that have no LOINC code.
AIWS_SYSTEM = "urn:aiws:plugin-input"


def parse_bundle(plugin: str, doc: dict[str, Any]) -> Any:
    """Validate ``doc`` as an R4 Bundle. Raises :class:`InvalidInput` naming the FHIR path at fault."""
    if doc.get("resourceType") != "Bundle":
        raise InvalidInput(plugin, [FieldProblem("resourceType", "must be Bundle", repr(doc.get("resourceType")))])
    from fhir.resources.R4B.bundle import Bundle

    from plugins.runner import problems_from_validation

    try:
        return Bundle.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(plugin, problems_from_validation(exc, "Bundle.")) from exc


def resources(bundle: Any, resource_type: str) -> Iterator[Any]:
    """The bundle's resources of one type, in bundle order."""
    for entry in bundle.entry or []:
        res = entry.resource
        if res is not None and res.get_resource_type() == resource_type:
            yield res


def label(res: Any) -> str:
    """``Observation/o1`` (or ``Observation#3`` without an id), for error messages."""
    return f"{res.get_resource_type()}/{res.id}" if res.id else f"{res.get_resource_type()}#?"


def reference(ref: Any) -> str | None:
    """The reference string of a Reference (``Patient/p1``), or None."""
    return None if ref is None else ref.reference


def codes(concept: Any, system: str | tuple[str, ...] | None = None) -> list[str]:
    """Codes of a CodeableConcept, optionally only those of ``system``."""
    if concept is None:
        return []
    systems = (system,) if isinstance(system, str) else system
    return [c.code for c in concept.coding or [] if c.code and (systems is None or c.system in systems)]


def concept_text(concept: Any) -> str | None:
    """``text``, else the first coding's display, else its code."""
    if concept is None:
        return None
    if concept.text:
        return str(concept.text)
    for c in concept.coding or []:
        if c.display or c.code:
            return str(c.display or c.code)
    return None


def quantity(q: Any) -> tuple[float, str] | None:
    """(value, UCUM code or unit text) of a Quantity; None without a value."""
    if q is None or q.value is None:
        return None
    return float(q.value), str(q.code or q.unit or "")


def as_datetime(value: Any) -> datetime | None:
    """FHIR dateTime/instant/date → aware datetime (UTC assumed when no zone is given)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def observation_time(obs: Any) -> datetime | None:
    """effectiveDateTime, else effectivePeriod.start, else effectiveInstant, else issued."""
    period = getattr(obs, "effectivePeriod", None)
    for value in (obs.effectiveDateTime, period.start if period else None,
                  getattr(obs, "effectiveInstant", None), obs.issued):
        if value is not None:
            return as_datetime(value)
    return None


def age_years(birth: date, at: date) -> int:
    """Completed years between ``birth`` and ``at``."""
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def bundle_date(bundle: Any) -> date:
    """The date the bundle describes: Bundle.timestamp, else today (UTC)."""
    ts = as_datetime(bundle.timestamp)
    return ts.date() if ts else datetime.now(UTC).date()
