"""Response headers that protect browsers: framing, sniffing, the sources a page may load, and HSTS over HTTPS.

Every response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
same-origin`` and a Content-Security-Policy that allows nothing from another origin (scripts only from this
site's files, no inline script; inline styles allowed: Swagger UI and ReDoc set them). Console pages and the
API are not cached by browsers or proxies (``Cache-Control: no-store``). With HTTPS on,
``Strict-Transport-Security`` tells browsers to use HTTPS for a year.
"""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
                           "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
HSTS = "max-age=31536000"


class SecurityHeaders:
    """ASGI middleware adding the headers above (a header a route set itself is kept)."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self._headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"), (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]
        if https:
            self._headers.append((b"strict-transport-security", HSTS.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = not scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self._headers if k not in present]
                if no_store and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
