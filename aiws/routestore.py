"""Live routing rules: the ``[[routes]]`` of the TOML file, kept in the ledger, changed without restart.

Seeded from the file, kept in the ledger (``routing_config``), changed by the HTTP API, the console or
the CLI. As with the network configuration (:mod:`aiws.netconfig`): when the file's ``[[routes]]``
change, the file wins at the next start-up (audited); otherwise changes made through the API persist.

* **Validated as the file is:** each route by :class:`aiws.config.RouteConfig` (DICOM keywords, regular
  expressions, ``[min, max]`` ranges, no unknown key), its pipeline among the known ones with settings
  that parse, its destinations among the live ones. Every problem is named ``routes[<index>].<field>``.
* **Versioned:** a change names the version it edits; a change made by someone else in between is
  refused (:class:`StaleVersion`, HTTP 409), never silently overwritten. Each change is audited with
  the old and new value of every changed key.
* **Applied without restart:** the scheduler asks :meth:`RouteStore.routes` at each study it routes;
  that reads the version from the ledger (one indexed row) and recompiles only when it moved, so a
  change made by another process or node sharing the ledger is seen at the next study too.

:func:`explain_routes` says, per series, which route decided and why each other one did not.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydantic import ValidationError
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from aiws.config import Config, RouteConfig
from aiws.errors import ConfigError, Conflict
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.pipelines import PIPELINES
from aiws.routing import Route
from imaging.rules import ConditionResult

#: What a value not shown reads as.
WITHHELD = "(withheld)"
#: Longest value shown; a longer one is cut.
MAX_VALUE_CHARS = 64


@dataclass(frozen=True)
class Problem:
    """One validation problem: *index* of the route (None: the document), *field* within it (dotted)."""

    index: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = "routes" if self.index is None else f"routes[{self.index}]"
        return f"{where}.{self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RulesInvalid(ConfigError):
    """Routing rules refused; :attr:`problems` names each route index and field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)


class StaleVersion(Conflict):
    """The rules changed since the version a change was made on."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"version: the routing rules are at version {current}, this change was made on "
                         f"version {expected}; reload them and apply the change again")
        self.current = current


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc)


def validate_routes(raw: Any, config: Config, destinations: Iterable[str]) -> tuple[RouteConfig, ...]:
    """The routes of *raw* (a list of ``[[routes]]`` tables) as the file's would be checked.

    Raises:
        RulesInvalid: every problem, each naming the route index and the field (never a tag value:
            a message repeats at most the rule as written).
    """
    if not isinstance(raw, list):
        raise RulesInvalid([Problem(None, "", "expected a list of routes")])
    known = set(destinations)
    problems: list[Problem] = []
    routes: list[RouteConfig] = []
    for i, item in enumerate(raw):
        try:
            route = RouteConfig.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
                problems.append(Problem(i, _field(err["loc"]), msg))
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            if isinstance(item, dict):  # the names are checked too when another field is wrong
                pipeline = item.get("pipeline") if "pipeline" not in bad else None
                send_to = item.get("send_to", ()) if "send_to" not in bad else ()
                problems += _name_problems(i, pipeline, send_to, config, known)
            continue
        problems += _name_problems(i, route.pipeline, route.send_to, config, known)
        routes.append(route)
    if problems:
        raise RulesInvalid(problems)
    return tuple(routes)


def _name_problems(i: int, pipeline: Any, send_to: Any, config: Config, known: set[str]) -> list[Problem]:
    """The pipeline must be known with settings that parse; each destination must be configured."""
    problems = []
    if isinstance(pipeline, str) and pipeline not in PIPELINES:
        problems.append(Problem(i, "pipeline", f"unknown pipeline {pipeline!r} (known: {', '.join(sorted(PIPELINES))})"))
    elif isinstance(pipeline, str):
        try:
            PIPELINES[pipeline].settings(config)
        except ConfigError as exc:
            problems.append(Problem(i, "pipeline", str(exc)))
    names = [n for n in send_to if isinstance(n, str)] if isinstance(send_to, (list, tuple)) else []
    problems += [Problem(i, "send_to", f"unknown destination {name!r}") for name in names if name not in known]
    return problems


def routes_from_toml(text: str) -> list[Any]:
    """The ``[[routes]]`` tables of a TOML text (the file's syntax; nothing else may be in it).

    Raises:
        RulesInvalid: a syntax error (line and column) or another top-level key.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesInvalid([Problem(None, "", f"TOML syntax error: {exc}")]) from None
    others = sorted(set(doc) - {"routes"})
    if others:
        raise RulesInvalid([Problem(None, "", f"only [[routes]] tables here, found {', '.join(others)}")])
    routes = doc.get("routes", [])
    return list(routes) if isinstance(routes, list) else [routes]


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        if "'" not in value and "\n" not in value:
            return f"'{value}'"  # literal string: a regex's backslashes stay as written
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}" if isinstance(value, float) else str(value)


def routes_to_toml(routes: Iterable[RouteConfig]) -> str:
    """The routes as ``[[routes]]`` tables, ready for the TOML file (:func:`routes_from_toml` reads it back)."""
    out = []
    for route in routes:
        out += ["[[routes]]", f"pipeline = {toml_value(route.pipeline)}", f"send_to = {toml_value(route.send_to)}"]
        if route.match:
            out.append("[routes.match]")
            out += [f"{key} = {toml_value(spec)}" for key, spec in route.match.items()]
        out.append("")
    return "\n".join(out)


def _doc(routes: Iterable[RouteConfig]) -> dict[str, Any]:
    return {"routes": [r.model_dump(mode="json") for r in routes]}


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RuleSet:
    """The live rules at one version; *from_file*: the same as the file's ``[[routes]]`` at the last seed."""

    version: int
    routes: tuple[RouteConfig, ...]
    compiled: tuple[Route, ...]
    from_file: bool


class RouteStore:
    """Reads and changes the live routing rules held in the ledger (thread-safe)."""

    def __init__(self, ledger: Ledger, config: Config, network: NetworkStore) -> None:
        self._ledger = ledger
        self._config = config
        self._network = network
        self._lock = threading.Lock()
        self._cached: RuleSet | None = None

    def seed(self, config: Config, actor: str = "startup") -> None:
        """Adopt the file's ``[[routes]]`` when they are new or changed since the last seed."""
        doc = _doc(config.routes)
        file_hash = _hash(doc)
        current = self._ledger.routing_doc()
        if current is None or current[1] != file_hash:
            self._ledger.save_routing(doc, file_hash, actor, "routing rules loaded from file",
                                      {"reason": "first start" if current is None else "file changed"})

    def check(self) -> None:
        """Validate the live rules against today's pipelines and destinations (at start-up: rules saved
        through the API may name a destination removed since).

        Raises:
            RulesInvalid: naming the route and field, as :func:`validate_routes`.
        """
        current = self._ledger.routing_doc()
        if current is None:
            return
        try:
            self.validate(current[0]["routes"])
        except RulesInvalid as exc:
            raise RulesInvalid([Problem(p.index, p.field, f"{p.message} (live rules, version {current[2]}; "
                                        "correct them with `aiws routes set FILE`)") for p in exc.problems]) from None

    # -- reading ---------------------------------------------------------------------
    def current(self) -> RuleSet:
        """The live rules; re-read and compiled only when the ledger's version moved."""
        version = self._ledger.routing_version()
        with self._lock:
            if self._cached is None or self._cached.version != version:
                stored = self._ledger.routing_doc()
                if stored is None:
                    raise ConfigError("routing rules not seeded")
                doc, file_hash, stored_version = stored
                routes = tuple(RouteConfig.model_validate(r) for r in doc["routes"])
                self._cached = RuleSet(stored_version, routes, tuple(Route.of(r) for r in routes),
                                       _hash(doc) == file_hash)
            return self._cached

    def routes(self) -> tuple[Route, ...]:
        """The compiled live routes (what :class:`aiws.scheduler.Scheduler` routes each study with)."""
        return self.current().compiled

    def refuse_if_named(self, destination: str) -> None:
        """Before a destination is removed: the live rules must not name it (the next start would refuse them).

        Raises:
            Conflict: naming the routes that send to it.
        """
        used = [f"routes[{i}]" for i, r in enumerate(self.current().routes) if destination in r.send_to]
        if used:
            raise Conflict(f"destination {destination!r} is named by {', '.join(used)}.send_to: change the routing "
                           "rules first")

    # -- changing ----------------------------------------------------------------------
    def validate(self, raw: Any) -> tuple[RouteConfig, ...]:
        """:func:`validate_routes` against this service's configuration and live destinations."""
        return validate_routes(raw, self._config, self._network.destinations())

    def replace(self, raw: Any, expected_version: int, actor: str) -> RuleSet:
        """Validate *raw* and make it the live rules, if they are still at *expected_version*.

        Raises:
            RulesInvalid: a route refused (nothing changed).
            StaleVersion: the rules changed since *expected_version* (nothing changed).
        """
        routes = self.validate(raw)
        stored = self._ledger.routing_doc()
        if stored is not None and stored[0] == json.loads(json.dumps(_doc(routes))):
            return self.current()  # nothing to change (nor to audit)
        file_hash = stored[1] if stored else ""
        version = self._ledger.save_routing(_doc(routes), file_hash, actor, "routing rules changed",
                                            {"routes": len(routes)}, expected_version=expected_version)
        if version is None:
            raise StaleVersion(expected_version, self._ledger.routing_version())
        return self.current()


@dataclass(frozen=True)
class RouteVerdict:
    """One route on one series: *matched* (every condition holds), *decides* (the first matching route
    of its pipeline: a job), *shadowed_by* (the index of an earlier matching route of the same pipeline)."""

    index: int
    pipeline: str
    send_to: tuple[str, ...]
    matched: bool
    decides: bool
    shadowed_by: int | None
    conditions: tuple[ConditionResult, ...]


@dataclass(frozen=True)
class SeriesExplanation:
    series_uid: str
    verdicts: tuple[RouteVerdict, ...]

    @property
    def deciding(self) -> tuple[RouteVerdict, ...]:
        return tuple(v for v in self.verdicts if v.decides)


def explain_routes(routes: Sequence[Route], series_headers: Mapping[str, Any]) -> list[SeriesExplanation]:
    """For each series (SeriesInstanceUID → one representative header), each route's verdict, by the rule
    of :func:`aiws.routing.route_study`: per pipeline, the first matching route decides."""
    out = []
    for series_uid, header in series_headers.items():
        first: dict[str, int] = {}
        verdicts = []
        for i, route in enumerate(routes):
            conditions = route.rules.explain(header)
            matched = all(c.matched for c in conditions)
            decides = matched and route.pipeline not in first
            shadowed = first.get(route.pipeline) if matched and not decides else None
            if decides:
                first[route.pipeline] = i
            verdicts.append(RouteVerdict(i, route.pipeline, route.send_to, matched, decides, shadowed, conditions))
        out.append(SeriesExplanation(series_uid, tuple(verdicts)))
    return out


def file_headers(fp: BinaryIO) -> dict[str, Dataset]:
    """The header of one DICOM instance (no pixel data, read as the scheduler reads a spooled one), keyed by
    its SeriesInstanceUID: what :func:`explain_routes` takes.

    Raises:
        ConfigError: not a DICOM file (naming the exception type, never a value).
    """
    try:
        ds = dcmread(fp, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ConfigError(f"file: not a readable DICOM file ({type(exc).__name__})") from None
    series = ds.get("SeriesInstanceUID")
    return {str(series) if series else "(no SeriesInstanceUID)": ds}


def identifying(keyword: str) -> bool:
    """Attributes whose value an explanation never shows: person names (VR PN) and patient identifiers."""
    if keyword.startswith(("Patient", "OtherPatient", "IssuerOfPatient")):
        return True
    tag = keyword_dict.get(keyword)
    return tag is not None and dictionary_VR(tag) == "PN"


def shown_value(keyword: str, value: str | None, show_values: bool) -> str | None:
    """A compared value as an explanation may show it: None when absent, :data:`WITHHELD` when values are not
    shown or the attribute identifies a person, else the value (cut at :data:`MAX_VALUE_CHARS`)."""
    if value is None:
        return None
    if not show_values or identifying(keyword):
        return WITHHELD
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
