"""TLS contexts for the SCP (server side) and the sender (client side)."""
from __future__ import annotations

import ssl

from pacs_bridge.settings import TlsSettings


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """Context for the SCP: our certificate; peers verified when a CA is configured."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: TlsSettings) -> ssl.SSLContext:
    """Context for the sender: the destination is verified against the CA when configured."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False  # DICOM peers are addressed by IP and AE title
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_file))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
    return ctx
