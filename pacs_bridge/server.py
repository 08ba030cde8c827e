"""The SCP's association server: every connection is vetted off the accept thread before pynetdicom sees it.

pynetdicom's ``AssociationServer`` runs the TLS handshake in its accept thread without a timeout
(one idle TCP connection then blocks every new association), and turns each accepted socket into
an ``Association`` at once, so idle sockets count against ``maximum_associations``. Here:

- the accept thread only accepts, sets TCP_NODELAY and counts; a connection over the per-address
  limit (pending and associated connections from one IP) or the limit of pending connections is
  closed at once;
- a thread per connection runs the TLS handshake and waits for the first bytes of the
  A-ASSOCIATE-RQ, both within ``request_timeout_s`` of the accept; only then does pynetdicom get
  the socket (an ``Association`` is created and counted);
- the rest of the A-ASSOCIATE-RQ must come within the ACSE timeout, set to the same value; once
  the request is read, the association's socket gets the network timeout, so a peer that stops
  in the middle of a PDU is dropped instead of holding its thread for ever.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from pacs_bridge.settings import ScpSettings
from pacs_bridge.tls import server_context

LOGGER = logging.getLogger(__name__)

_WARNING_INTERVAL_S = 10.0  # per address and kind: one warning, then a count, so a flood does not flood the log


@dataclass(frozen=True)
class ConnectionLimits:
    """What one peer may hold before it has associated, and for how long."""

    per_host: int  # connections open at once from one IP address (pending and associated)
    pending: int  # connections that have not yet sent their A-ASSOCIATE-RQ, all addresses together
    request_timeout_s: float  # TLS handshake plus the first bytes of the A-ASSOCIATE-RQ, from the accept
    network_timeout_s: float | None  # on the socket of an association once its request is read


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:  # already reset by the peer
        LOGGER.debug("shutdown of a vetted connection: %s", type(exc).__name__)
    sock.close()


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """True when *sock* has bytes (or an end of stream) to read within *timeout_s*."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()  # not select(): descriptors past FD_SETSIZE are fine
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(max(timeout_s, 0.0) * 1000.0))


def _ended_by_peer(sock: socket.socket) -> bool:
    """True when a readable plain socket has reached its end (or was reset) without a byte.

    Handed to pynetdicom, such a connection would hold its address's slot for the whole ACSE timeout
    (the acceptor waits for an A-ASSOCIATE-RQ that cannot come): a peer that connects and closes again,
    a port probe, a load balancer's health check, would lock its own address out for that long. A TLS
    socket is left to pynetdicom (``SSLSocket.recv`` takes no flags; its close ends the handshake first).
    """
    if isinstance(sock, ssl.SSLSocket):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:  # reset by the peer
        return True


class VettingAssociationServer(ThreadedAssociationServer):
    """A ``ThreadedAssociationServer`` that limits and vets connections before they associate.

    Created by :func:`make_association_server` (``AE.make_server`` passes ``limits`` through).
    """

    daemon_threads = True  # a pending connection never holds up stop(); it times out by itself
    block_on_close = False

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        self._limits = limits
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._warned: dict[tuple[str, str], tuple[float, int]] = {}
        self._warned_lock = threading.Lock()
        super().__init__(*args, **kwargs)
        self.bind(evt.EVT_REQUESTED, self._on_requested)

    # -- accept thread: accept, count, refuse; nothing that can block -------------------------
    def get_request(self) -> tuple[socket.socket, Any]:
        client, address = self.socket.accept()  # no TLS here: the handshake runs in the connection's thread
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            LOGGER.debug("TCP_NODELAY not set: %s", type(exc).__name__)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Reserve a pending slot for the connection, or refuse it (it is closed at once)."""
        ip = str(client_address[0])
        with self._lock:
            pending_total = sum(self._pending.values())
            from_ip = self._pending[ip] + self._associated_from(ip)
            if pending_total >= self._limits.pending:
                reason = f"{pending_total} connections are waiting for their association request"
            elif from_ip >= self._limits.per_host:
                reason = f"{from_ip} connections are open from this address (limit {self._limits.per_host})"
            else:
                self._pending[ip] += 1
                return True
        self._warn(ip, "refused", reason)
        return False

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._release(str(client_address[0]))
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOGGER.exception("connection from %s failed", client_address[0] if client_address else "?")

    # -- the connection's own thread -------------------------------------------------------------
    def process_request_thread(self, request: Any, client_address: Any) -> None:
        ip = str(client_address[0])
        sock: socket.socket | None = request
        try:
            sock = self._vet(request, ip)  # None: closed here
            if sock is not None and self._closing.is_set():
                _close(sock)
            elif sock is not None:
                self.finish_request(sock, client_address)  # pynetdicom: an Association thread takes the socket
        except Exception:
            LOGGER.exception("connection from %s failed before its association started", ip)
            if sock is not None:
                _close(sock)
        finally:
            self._release(ip)

    def _vet(self, raw: socket.socket, ip: str) -> socket.socket | None:
        """TLS handshake and first request bytes within the request timeout; None when closed."""
        timeout = self._limits.request_timeout_s
        deadline = time.monotonic() + timeout
        raw.settimeout(timeout)
        sock = raw
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(raw, server_side=True)  # the whole handshake within timeout
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "reason", None)  # e.g. PEER_DID_NOT_RETURN_A_CERTIFICATE, as words
                detail = str(reason).lower().replace("_", " ") if reason else type(exc).__name__
                self._warn(ip, "TLS handshake failed", detail)
                _close(raw)
                return None
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _readable(sock, remaining):
            self._warn(ip, "closed", f"no association request within {timeout:.0f} s")
            _close(sock)
            return None
        if _ended_by_peer(sock):
            LOGGER.debug("connection from %s closed by the peer before its association request", ip)
            _close(sock)
            return None
        return sock

    def _on_requested(self, event: Event) -> None:
        """The A-ASSOCIATE-RQ is read: from now on the socket waits up to the network timeout."""
        held = event.assoc.dul.socket
        sock = held.socket if held is not None else None
        if sock is not None:
            sock.settimeout(self._limits.network_timeout_s)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _associated_from(self, ip: str) -> int:
        count = 0
        for assoc in self.active_associations:
            info = assoc.requestor.address_info
            if info is not None and info.address == ip and assoc.is_alive():
                count += 1
        return count

    def _release(self, ip: str) -> None:
        with self._lock:
            self._pending[ip] -= 1
            if self._pending[ip] <= 0:
                del self._pending[ip]

    def _warn(self, ip: str, what: str, reason: str) -> None:
        """``connection from IP <what>: <reason>``, at most once per address and kind per interval."""
        now = time.monotonic()
        with self._warned_lock:
            last, suppressed = self._warned.get((ip, what), (float("-inf"), 0))
            if now - last < _WARNING_INTERVAL_S:
                self._warned[(ip, what)] = (last, suppressed + 1)
                return
            if len(self._warned) > 4096:  # many addresses: forget the old ones
                self._warned.clear()
            self._warned[(ip, what)] = (now, 0)
        more = f" (and {suppressed} more since the last such warning)" if suppressed else ""
        LOGGER.warning("connection from %s %s: %s%s", ip, what, reason, more)

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()


def make_association_server(
    ae: AE, settings: ScpSettings, handlers: Sequence[tuple[Any, ...]]
) -> VettingAssociationServer:
    """Bind the SCP's server (not yet serving); TLS from ``settings.tls``.

    Logs a warning when TLS is on without ``ca_file``: clients are then not authenticated.

    Raises:
        OSError: the address cannot be bound.
        ssl.SSLError: the certificate, key or CA file cannot be loaded.
    """
    ssl_context = None
    if settings.tls is not None:
        ssl_context = server_context(settings.tls)
        if settings.tls.ca_file is None:
            LOGGER.warning(
                "DICOM TLS on port %d without ca_file: clients are not authenticated (any client may connect "
                "without a certificate); set [dicom.tls] ca_file to require certificates signed by your CA",
                settings.port,
            )
    ae.acse_timeout = settings.request_timeout_s  # the rest of the A-ASSOCIATE-RQ, once its first bytes came
    limits = ConnectionLimits(
        per_host=settings.max_associations_per_host,
        pending=max(16, 4 * settings.max_associations),
        request_timeout_s=settings.request_timeout_s,
        network_timeout_s=settings.network_timeout_s,
    )
    server = ae.make_server(
        (settings.host, settings.port),
        ssl_context=ssl_context,
        evt_handlers=list(handlers),
        server_class=VettingAssociationServer,
        limits=limits,
    )
    return server
