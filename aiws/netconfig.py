"""Live network configuration: local AE title, allowed sources, destinations.

Seeded from the TOML file, kept in the ledger, changed by the HTTP API or the
CLI, and applied without restart (the SCP reads the policy at each association
request). When the file's ``[dicom]`` network part changes, the file wins at
the next start-up (audited); otherwise changes made through the API persist.
"""
from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from pydantic import ValidationError

from aiws.config import Config, DestinationConfig, SourceConfig, check_ae_title
from aiws.errors import ConfigError, Conflict, NotFound
from aiws.ledger import Ledger
from pacs_bridge.settings import AcceptPolicy, Destination, Source


def _file_doc(config: Config) -> dict[str, Any]:
    return {
        "ae_title": config.dicom.ae_title,
        "require_known_source": config.dicom.require_known_source,
        "sources": [s.model_dump() for s in config.dicom.sources],
        "destinations": [d.model_dump() for d in config.dicom.destinations],
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"


class NetworkStore:
    """Reads and changes the live network configuration held in the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._cached: tuple[int, dict[str, Any]] | None = None

    def seed(self, config: Config, actor: str = "startup") -> None:
        """Adopt the file's network part when it is new or changed since the last seed."""
        doc = _file_doc(config)
        file_hash = _hash(doc)
        current = self._ledger.network_doc()
        if current is None or current[1] != file_hash:
            self._ledger.save_network(doc, file_hash, actor, "network config loaded from file",
                                      {"reason": "first start" if current is None else "file changed"})

    # -- reading ---------------------------------------------------------------------
    def doc(self) -> dict[str, Any]:
        version = self._ledger.network_version()
        with self._lock:
            if self._cached is None or self._cached[0] != version:
                current = self._ledger.network_doc()
                if current is None:
                    raise ConfigError("network configuration not seeded")
                self._cached = (current[2], current[0])
            return self._cached[1]

    def policy(self) -> AcceptPolicy:
        """Who may associate. A source without a host counts only where ``any_host`` says so
        (a document saved before that rule existed may hold one without it: it matches nothing)."""
        doc = self.doc()
        return AcceptPolicy(
            ae_title=doc["ae_title"],
            require_known_source=doc["require_known_source"],
            sources=tuple(Source(s["ae_title"], s.get("host")) for s in doc["sources"]
                          if s.get("host") or s.get("any_host", False)),
        )

    def destinations(self) -> dict[str, Destination]:
        return {
            d["name"]: Destination(d["name"], d["ae_title"], d["host"], int(d["port"]), bool(d.get("tls", False)),
                                   verify=bool(d.get("verify", True)))
            for d in self.doc()["destinations"]
        }

    def destination_options(self, name: str) -> dict[str, Any]:
        for d in self.doc()["destinations"]:
            if d["name"] == name:
                return dict(d)
        raise NotFound(f"destination {name!r} is not configured")

    # -- changing ----------------------------------------------------------------------
    def _save(self, doc: dict[str, Any], actor: str, action: str, detail: dict[str, Any]) -> None:
        current = self._ledger.network_doc()
        file_hash = current[1] if current else ""
        self._ledger.save_network(doc, file_hash, actor, action, detail)

    def set_ae(self, ae_title: str | None, require_known_source: bool | None, actor: str) -> dict[str, Any]:
        doc = json.loads(json.dumps(self.doc()))
        if ae_title is not None:
            try:
                doc["ae_title"] = check_ae_title(ae_title)
            except ValueError as exc:
                raise ConfigError(f"ae_title: {exc}") from None
        if require_known_source is not None:
            doc["require_known_source"] = bool(require_known_source)
        self._save(doc, actor, "local AE changed",
                   {"ae_title": doc["ae_title"], "require_known_source": doc["require_known_source"]})
        return {"ae_title": doc["ae_title"], "require_known_source": doc["require_known_source"]}

    def add_source(self, raw: dict[str, Any], actor: str) -> dict[str, Any]:
        try:
            src = SourceConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_validation_message(exc)) from None
        doc = json.loads(json.dumps(self.doc()))
        if any(s["ae_title"] == src.ae_title and s.get("host") == src.host for s in doc["sources"]):
            raise Conflict(f"source {src.ae_title!r} ({src.host or 'any host'}) already exists")
        doc["sources"].append(src.model_dump())
        self._save(doc, actor, "source added", src.model_dump())
        return src.model_dump()

    def remove_source(self, ae_title: str, actor: str) -> None:
        doc = json.loads(json.dumps(self.doc()))
        kept = [s for s in doc["sources"] if s["ae_title"] != ae_title]
        if len(kept) == len(doc["sources"]):
            raise NotFound(f"source {ae_title!r} is not configured")
        doc["sources"] = kept
        self._save(doc, actor, "source removed", {"ae_title": ae_title})

    def add_destination(self, raw: dict[str, Any], actor: str, replace: bool = False) -> dict[str, Any]:
        try:
            dest = DestinationConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_validation_message(exc)) from None
        doc = json.loads(json.dumps(self.doc()))
        exists = any(d["name"] == dest.name for d in doc["destinations"])
        if exists and not replace:
            raise Conflict(f"destination {dest.name!r} already exists")
        if replace and not exists:
            raise NotFound(f"destination {dest.name!r} is not configured")
        doc["destinations"] = [d for d in doc["destinations"] if d["name"] != dest.name] + [dest.model_dump()]
        self._save(doc, actor, "destination changed" if replace else "destination added", dest.model_dump())
        return dest.model_dump()

    def remove_destination(self, name: str, actor: str) -> None:
        doc = json.loads(json.dumps(self.doc()))
        kept = [d for d in doc["destinations"] if d["name"] != name]
        if len(kept) == len(doc["destinations"]):
            raise NotFound(f"destination {name!r} is not configured")
        doc["destinations"] = kept
        self._save(doc, actor, "destination removed", {"name": name})
