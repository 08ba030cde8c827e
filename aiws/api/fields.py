"""Request bodies and parameters as the HTTP API takes them: strict booleans, checked hosts, bounded integers.

The configuration models (:mod:`aiws.config`) are lax where a TOML file is (``tls = 1``); over HTTP a
boolean is ``true`` or ``false`` only, a host is an IP address or a host name of at most 253
characters, and an integer parameter has bounds a SQLite row id fits in, so that an odd value
answers 422 naming the field rather than 500.
"""
from __future__ import annotations

import ipaddress
import re
import types
from typing import Annotated, Any, Union

from fastapi import Path
from pydantic import AfterValidator, BaseModel, Strict, WithJsonSchema, create_model

#: Largest row id (SQLite INTEGER); larger path or query integers answer 422.
MAX_ROW_ID = 2**63 - 1
#: Longest host name (RFC 1123).
MAX_HOST_CHARS = 253
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

RowId = Annotated[int, Path(ge=0, le=MAX_ROW_ID)]

#: The OpenAPI description of fields whose rule lives in a validator of :mod:`aiws.config` (the same rule,
#: so that clients and the generated tests see it).
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ae_title": {"type": "string", "pattern": r"^[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]{0,15}$"},
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
}


def check_host(value: str | None) -> str | None:
    """*value* when it is an IP address or a host name (RFC 1123 labels, at most 253 characters).

    Raises:
        ValueError: naming the rule broken (the value is not repeated: it may be long).
    """
    if value is None:
        return None
    if not value or len(value) > MAX_HOST_CHARS:
        raise ValueError(f"an IP address or host name of 1 to {MAX_HOST_CHARS} characters "
                         f"(got {len(value)})")
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        labels = value.removesuffix(".").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("not an IP address or host name (letters, digits and '-' between dots)")
    return value


def _host_schema(required: bool) -> dict[str, Any]:
    host = {"type": "string", "maxLength": MAX_HOST_CHARS,
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}, {"format": "hostname"}]}
    return host if required else {"anyOf": [host, {"type": "null"}]}


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if isinstance(annotation, types.UnionType) or getattr(annotation, "__origin__", None) is Union:
        return bool in annotation.__args__ and all(a in (bool, type(None)) for a in annotation.__args__)
    return False


def api_model(base: type[BaseModel]) -> type[BaseModel]:
    """*base* as the API takes it: every boolean field strict, every ``host`` field checked by :func:`check_host`
    (AE titles and names described with their patterns).

    The subclass keeps *base*'s fields, defaults and validators (and any added to *base* later).
    """
    overrides: dict[str, Any] = {}
    for name, info in base.model_fields.items():
        if _is_bool(info.annotation):
            overrides[name] = (Annotated[info.annotation, Strict()], info)
        elif name == "host":
            overrides[name] = (Annotated[info.annotation, AfterValidator(check_host),
                                         WithJsonSchema(_host_schema(info.is_required()))], info)
        elif name in _FIELD_SCHEMAS and info.annotation is str:
            overrides[name] = (Annotated[str, WithJsonSchema(_FIELD_SCHEMAS[name])], info)
    model: type[BaseModel] = create_model(f"{base.__name__}In", __base__=base, **overrides)
    return model
