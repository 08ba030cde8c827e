"""TLS contexts for the SCP (server side) and the sender (client side)."""
from __future__ import annotations

import ssl

from pacs_bridge.errors import BridgeError
from pacs_bridge.settings import TlsSettings


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """Context for the SCP: our certificate; peers verified when a CA is configured."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: TlsSettings, verify: bool = True) -> ssl.SSLContext:
    """Context for the sender; our certificate is presented to the destination.

    With *verify* (the default) the destination's certificate must chain to ``tls.ca_file`` and
    name the host we connect to (DNS name or IP address in its subjectAltName). Without it the
    peer is not checked at all: only for a destination configured with ``verify = false``.

    Raises:
        BridgeError: *verify* without a ``ca_file`` to verify against.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if verify:
        if tls.ca_file is None:
            raise BridgeError("TLS peer verification needs a ca_file (or verify = false on the destination)")
        ctx.load_verify_locations(cafile=str(tls.ca_file))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
    return ctx
