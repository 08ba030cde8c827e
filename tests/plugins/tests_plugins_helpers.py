"""Builders of FHIR R4 resources for the plugin tests."""
from __future__ import annotations

import json
from typing import Any

from plugins.runner import run_plugin


def run_doc(plugin: Any, doc: Any, hint: str | None = None) -> Any:
    """Run a plugin on a JSON-able document (or raw CSV text) and return the JSON body."""
    data = doc.encode() if isinstance(doc, str) else json.dumps(doc, default=str).encode()
    return run_plugin(plugin, data, hint).body()


def fhir_bundle(resources: list[dict[str, Any]], timestamp: str = "2024-03-01T12:00:00+00:00") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "timestamp": timestamp,
            "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]}


def observation(oid: str, code: str, when: str, value: float | None, unit: str, system: str = "http://loinc.org",
                subject: str = "Patient/p1") -> dict[str, Any]:
    obs: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                           "code": {"coding": [{"system": system, "code": code}]},
                           "subject": {"reference": subject}, "effectiveDateTime": when}
    if value is not None:
        obs["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return obs
