"""Request limits enforced before a route sees a request (an ASGI middleware).

* **Credentials first.** A write (POST, PUT, PATCH, DELETE) to an API route that declares its roles
  (:func:`aiws.api.auth.requires`) answers 401 before one byte of its body is read when the request carries
  no valid API token or session; FastAPI would otherwise read and parse the body before it runs the
  dependency. (Console pages, under ``/console``, are left to the dependency: it redirects to the login.)
* **Body size, while streaming.** A ``Content-Length`` above the route's limit answers 413 at once;
  a body that streams past it (chunked, or a lying length) answers 413 as soon as it does, never
  read in full.
* **JSON depth and integer size.** A JSON body nested deeper than :attr:`LimitSettings.max_json_depth`
  answers 422 naming ``body`` (Python's parser would raise ``RecursionError``: 500); an integer longer
  than :attr:`LimitSettings.max_int_digits` digits answers 422 naming its field (past 4300 digits Python
  refuses to convert it: 500 or a 400 that names nothing).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiws.api.auth import CONSOLE_PREFIX, role_check_of

#: Methods whose requests carry a body worth limiting.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Bodies larger than this are checked in a worker thread.
_INLINE_CHECK_BYTES = 256 * 1024
_DIGIT_RUNS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))  # digit -> "1", else "0"


@dataclass(frozen=True)
class LimitSettings:
    """Body limits: *max_body_bytes* for every route, except those under a prefix of *body_bytes_by_prefix*."""

    max_body_bytes: int = 1024 * 1024
    body_bytes_by_prefix: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    max_json_depth: int = 32
    max_int_digits: int = 1000

    def body_limit(self, path: str) -> int:
        for prefix, limit in self.body_bytes_by_prefix:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes


def protected_routes(routes: Sequence[BaseRoute]) -> list[APIRoute]:
    """The API routes (not console pages) whose dependencies include a role check (``requires(...)``)."""
    return [r for r in routes if isinstance(r, APIRoute) and not r.path.startswith(CONSOLE_PREFIX)
            and _needs_role(r.dependant)]


def _needs_role(dependant: Dependant) -> bool:
    return any(role_check_of(d.call) is not None or _needs_role(d) for d in dependant.dependencies)


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text *body* nests arrays and objects deeper than *max_depth* (brackets inside strings
    do not count).

    Vectorised (numpy): the brackets outside strings are those after an even number of unescaped quotes;
    a 16 MiB FHIR Bundle takes a small fraction of what parsing it does."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    data = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(data == 0x22)
    quotes = quotes[~_escaped(data, quotes)]
    folded = data | 0x20  # "[" -> "{", "]" -> "}"
    where = np.flatnonzero((folded == 0x7B) | (folded == 0x7D))
    outside = np.searchsorted(quotes, where) % 2 == 0
    steps = np.where(folded[where[outside]] == 0x7B, 1, -1)
    return bool(steps.size) and int(np.cumsum(steps).max()) > max_depth


def _escaped(data: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """For each quote position, whether an odd run of backslashes precedes it."""
    slashes = np.flatnonzero(data == 0x5C)
    if not slashes.size or not quotes.size:
        return np.zeros(quotes.shape, dtype=bool)
    starts = np.ones(slashes.shape, dtype=bool)
    starts[1:] = np.diff(slashes) != 1
    run_start = np.maximum.accumulate(np.where(starts, slashes, 0))  # where each backslash's run begins
    k = np.clip(np.searchsorted(slashes, quotes - 1), 0, slashes.size - 1)
    after_slash = slashes[k] == quotes - 1
    return after_slash & ((slashes[k] - run_start[k] + 1) % 2 == 1)


class _Huge(int):
    """An integer literal too long to convert (Python refuses past 4300 digits); marks where it was."""


def huge_integer_at(body: bytes, max_digits: int) -> list[str | int] | None:
    """The path (keys and indexes) of the first integer of *body* longer than *max_digits* digits, or None
    (also for a body that is not JSON: the route answers that)."""
    if b"1" * (max_digits + 1) not in body.translate(_DIGIT_RUNS):
        return None
    try:
        doc = json.loads(body, parse_int=lambda text: _Huge(0) if len(text.lstrip("-")) > max_digits else int(text))
    except ValueError:
        return None
    return _path_of_huge(doc, [])


def _path_of_huge(node: object, path: list[str | int]) -> list[str | int] | None:
    if isinstance(node, _Huge):
        return path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found = _path_of_huge(value, [*path, key])
        if found is not None:
            return found
    return None


class RequestLimits:
    """The middleware; *protected* are the routes that need credentials (see :func:`protected_routes`), and
    *credentials_ok(headers)* says whether a request's headers carry a valid token or session (blocking: it
    runs in a worker thread)."""

    def __init__(self, app: ASGIApp, settings: LimitSettings, credentials_ok: Callable[[dict[bytes, bytes]], bool],
                 protected: Sequence[APIRoute]) -> None:
        self.app = app
        self._settings = settings
        self._credentials_ok = credentials_ok
        self._protected = tuple(protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self._settings.body_limit(scope["path"])
        refusal, body = self._before_body(headers, limit), b""
        if self._needs_token(scope) and not await run_in_threadpool(self._credentials_ok, headers):
            refusal = 401, {"detail": "sign in or send Authorization: Bearer <API token>"}
        if refusal is None:
            body, outcome = await _read_body(receive, limit)
            content_type = headers.get(b"content-type", b"application/json")
            if outcome == "gone":
                return
            if outcome == "large":
                refusal = (413, {"detail": f"body: above the limit of {limit} bytes"})
            elif len(body) > _INLINE_CHECK_BYTES:  # milliseconds per MiB: off the event loop
                refusal = await run_in_threadpool(self._check_body, body, content_type)
            else:
                refusal = self._check_body(body, content_type)
        if refusal is not None:
            status, content = refusal
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await _answer(send, status, content, extra)
            return
        await self.app(scope, _replay(body, receive), send)

    def _before_body(self, headers: dict[bytes, bytes], limit: int) -> tuple[int, object] | None:
        """400/413 for a bad or too large length."""
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 18):
            return 400, {"detail": "content-length: not a byte count"}
        if declared is not None and int(declared) > limit:
            return 413, {"detail": f"body: {int(declared)} bytes above the limit of {limit}"}
        return None

    def _check_body(self, body: bytes, content_type: bytes) -> tuple[int, object] | None:
        """422 naming ``body`` for JSON nested too deep, or naming the field of a too long integer."""
        if not content_type.split(b";")[0].strip().lower().endswith(b"json"):
            return None
        if json_too_deep(body, self._settings.max_json_depth):
            return 422, {"detail": [{"loc": ["body"], "type": "json_depth",
                                     "msg": f"JSON nested deeper than {self._settings.max_json_depth} levels"}]}
        big = huge_integer_at(body, self._settings.max_int_digits)
        if big is not None:
            return 422, {"detail": [{"loc": ["body", *big], "type": "int_digits",
                                     "msg": f"integer of more than {self._settings.max_int_digits} digits"}]}
        return None

    def _needs_token(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in self._protected)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, str]:
    """``(body, "ok")``; ``(b"", "large")`` as soon as it passes *limit* bytes (the rest is never read);
    ``(b"", "gone")`` when the client went away."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"", "gone"
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", "large"
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks), "ok"


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, content: object, extra: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(content, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"connection", b"close"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
