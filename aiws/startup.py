"""Start-up checks that fail with one line naming the problem (``aiws serve`` exits 2 on them), and
the lock that says whether a service runs on a data directory (``aiws status``).

Checked before anything is started: the data directory can be created and written, the TLS
certificate and key load, the HTTP and DICOM addresses can be bound, and no other ``aiws serve``
holds the data directory (an exclusive ``flock`` on ``<data_dir>/aiws.lock``, released by the kernel
when the process ends, however it ends; the file holds the pid for ``aiws status``).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import ssl
from pathlib import Path

from aiws.config import Config
from aiws.errors import AiwsError

LOCK_NAME = "aiws.lock"


class StartupError(AiwsError):
    """The service cannot start; the message is the one line the operator reads."""


def check_data_dir(data_dir: Path) -> None:
    """Create *data_dir* (0700) when missing and prove a file can be written in it.

    Raises:
        StartupError: naming the directory and the OS error.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"storage.data_dir {data_dir}: not writable ({_os_reason(exc)})") from None


def check_tls(config: Config) -> None:
    """Load ``[dicom.tls]`` certificate, key and CA file the way the SCP will.

    Raises:
        StartupError: naming the files and what is wrong with them.
    """
    check_http_tls(config)
    tls = config.dicom.tls
    if tls is None:
        return
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(f"dicom.tls: certificate {tls.cert_file} with key {tls.key_file} cannot be loaded "
                           f"({_tls_reason(exc)})") from None
    if tls.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise StartupError(f"dicom.tls: ca_file {tls.ca_file} cannot be loaded ({_tls_reason(exc)})") from None


def check_http_tls(config: Config) -> None:
    """Load ``[http] tls_cert`` and ``tls_key`` (HTTPS) the way uvicorn will.

    Raises:
        StartupError: naming the files and what is wrong with them.
    """
    http = config.http
    if http.tls_cert is None or http.tls_key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(http.tls_cert, http.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(f"http: tls_cert {http.tls_cert} with tls_key {http.tls_key} cannot be loaded "
                           f"({_tls_reason(exc)})") from None


def bind_http(host: str, port: int) -> socket.socket:
    """A listening socket for the HTTP API (handed to uvicorn, so a taken port is known before start).

    Raises:
        StartupError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on connections whose proto says TCP (an accepted socket
    # inherits it), and without it Nagle and the client's delayed ACK add ~40 ms to each keep-alive response
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(port_message("HTTP", host, port, exc)) from None
    sock.set_inheritable(False)
    return sock


def port_message(what: str, host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{what} port {host}:{port} is already in use (another service listens there)"
    return f"{what} address {host}:{port} cannot be bound ({_os_reason(exc)})"


def _os_reason(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror}" if exc.strerror else type(exc).__name__


def _tls_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc.strerror or exc.reason or "")).strip()
        return f"{type(exc).__name__}: {text or exc.library or 'unreadable'}"
    return _os_reason(exc) if isinstance(exc, OSError) else type(exc).__name__


class ServiceLock:
    """The exclusive lock a running service holds on its data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises: StartupError when another service holds it (naming its pid)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StartupError(f"storage.data_dir {self.path.parent}: already used by a running aiws "
                               f"(pid {pid})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.set_inheritable(fd, False)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def running_pid(data_dir: Path) -> int | None:
    """The pid of the service running on *data_dir*, or None when none holds its lock."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None
