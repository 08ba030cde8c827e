"""Run a plugin on raw bytes: detect the form (flat JSON, FHIR R4 Bundle, CSV), validate, run.

Used by both the HTTP route and the CLI, so they agree on formats, errors and the audit record.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from plugins.base import Plugin, PluginOutput
from plugins.errors import FieldProblem, InvalidInput

LOGGER = logging.getLogger(__name__)

InputFormat = Literal["json", "fhir", "csv"]


@dataclass(frozen=True)
class RunResult:
    """What one run produced; ``body()`` is what the API returns and the CLI prints."""

    plugin: str
    version: str
    input_sha256: str
    input_format: InputFormat
    batch: bool
    outputs: list[PluginOutput]
    seconds: float

    def body(self) -> Any:
        dumped = [o.model_dump(mode="json") for o in self.outputs]
        return dumped if self.batch else dumped[0]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_detail(plugin: str, version: str, data: bytes, status: str, **extra: Any) -> dict[str, Any]:
    """The ledger audit record of a run: plugin, version, input hash, status, time. No identifiers."""
    return {"plugin": plugin, "version": version, "input_sha256": sha256_hex(data), "status": status,
            "at": time.time(), **extra}


def problems_from_validation(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Turn pydantic errors into field problems: ``prescriptions[2].dose_mg: Input should be > 0``."""
    problems = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        ctx = err.get("ctx") or {}
        if err["type"] == "field_rule":
            sub = str(ctx["field"])
            path = (f"{path}{sub}" if sub.startswith("[") else f"{path}.{sub}") if path else sub
            rule = str(ctx["rule"])
        else:
            rule = err["msg"]
        value = err.get("input")
        shown = None if isinstance(value, (dict, list)) or value is None else repr(value)[:60]
        field = f"{prefix}{path}" if path else (prefix.rstrip(".") or "(input)")
        problems.append(FieldProblem(field, rule, shown))
    return problems


def _validate(plugin: Plugin[Any, Any], docs: list[Any], prefixes: list[str]) -> list[BaseModel]:
    items: list[BaseModel] = []
    problems: list[FieldProblem] = []
    for doc, prefix in zip(docs, prefixes, strict=True):
        try:
            items.append(plugin.input_model.model_validate(doc))
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, prefix))
    if problems:
        raise InvalidInput(plugin.name, problems)
    return items


def _parse_fhir(plugin: Plugin[Any, Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "fhir" not in plugin.formats:
        raise InvalidInput(plugin.name, [FieldProblem("resourceType", f"{plugin.name} does not read FHIR")])
    from plugins.fhir import parse_bundle

    return plugin.from_fhir(parse_bundle(plugin.name, doc))


def _read_csv(plugin: Plugin[Any, Any], data: bytes) -> list[dict[str, str]]:
    if "csv" not in plugin.formats:
        raise InvalidInput(plugin.name, [FieldProblem("(input)", f"{plugin.name} does not read CSV; send JSON")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(plugin.name, [FieldProblem("(input)", f"CSV must be UTF-8 ({exc.reason})")]) from exc
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InvalidInput(plugin.name, [FieldProblem("(input)", "CSV has a header and at least one row")])
    return rows


def detect_format(data: bytes, hint: str | None) -> Literal["json", "csv"]:
    """``hint`` is a content type or file suffix; without one, JSON starts with ``{`` or ``[``."""
    if hint and "csv" in hint.lower():
        return "csv"
    if hint and "json" in hint.lower():
        return "json"
    return "json" if data.lstrip()[:1] in (b"{", b"[") else "csv"


def run_plugin(plugin: Plugin[Any, Any], data: bytes, hint: str | None = None) -> RunResult:
    """Parse ``data`` in the detected form, validate every record, run. Raises :class:`InvalidInput`."""
    start = time.perf_counter()
    fmt: InputFormat
    if detect_format(data, hint) == "csv":
        fmt = "csv"
        docs = plugin.from_csv_rows(_read_csv(plugin, data))
        batch = plugin.csv_is_batch
        prefixes = [f"[{i}]." for i in range(len(docs))] if batch else [""] * len(docs)
    else:
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(plugin.name, [FieldProblem("(input)", f"must be JSON ({exc})")]) from exc
        if isinstance(doc, dict) and "resourceType" in doc:
            fmt = "fhir"
            docs = _parse_fhir(plugin, doc)
            batch = len(docs) != 1
        elif isinstance(doc, list):
            fmt, docs, batch = "json", doc, True
        else:
            fmt, docs, batch = "json", [doc], False
        prefixes = [f"[{i}]." for i in range(len(docs))] if batch else [""]
    if not docs:
        raise InvalidInput(plugin.name, [FieldProblem("(input)", "at least one record is required")])
    items = _validate(plugin, docs, prefixes)
    outputs = [plugin.stamp(o) for o in plugin.run_batch(items)]
    seconds = time.perf_counter() - start
    LOGGER.debug("plugin %s %s: %d record(s) from %s in %.3f s", plugin.name, plugin.version, len(items),
                 fmt, seconds)
    return RunResult(plugin.name, plugin.version, sha256_hex(data), fmt, batch, outputs, seconds)
