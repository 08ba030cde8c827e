"""The running service: SCP, scheduler, senders, workers and HTTP API in one process tree."""
from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import ssl
import threading
from pathlib import Path

import uvicorn

from aiws.api.accounts import list_accounts
from aiws.api.app import create_app
from aiws.api.deps import ApiContext
from aiws.audit import AuditExporter
from aiws.config import Config
from aiws.errors import ConfigError
from aiws.intake import LedgerListener, recover_spool
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.netsettings import scp_settings, sender_settings
from aiws.pipelines import check_routes
from aiws.priors import RETRIEVE_DIR
from aiws.routestore import RouteStore
from aiws.scheduler import Scheduler
from aiws.sending import SendDispatcher
from aiws.startup import ServiceLock, StartupError, bind_http, check_data_dir, check_tls, port_message
from aiws.workers import WorkerPool
from imaging.backend import ArrayBackend
from imaging.errors import ImagingError
from pacs_bridge.retrieve import RetrieveInbox
from pacs_bridge.scp import StorageSCP
from pacs_bridge.spool import Spool

LOGGER = logging.getLogger(__name__)


def admin_token(config: Config) -> str:
    """The configured admin token, or one generated once and kept in ``<data_dir>/admin_token`` (0600)."""
    if config.http.admin_token:
        return config.http.admin_token
    path = config.storage.data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    LOGGER.info("admin token generated in %s", path)
    return token


def _node_dir(config: Config) -> Path:
    """``<data_dir>/nodes/<host>-<http port>``: what belongs to one node of several sharing data_dir."""
    path = config.storage.data_dir / "nodes" / f"{socket.gethostname()}-{config.http.port}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class Service:
    """Everything ``aiws serve`` runs. ``start()`` resumes from the ledger; ``stop()`` is orderly.

    Raises (constructor and ``start()``):
        ConfigError: a route or setting the configuration check refuses.
        StartupError: the data directory cannot be written, the TLS certificate does not load, a port
            is taken, or another service holds the data directory; nothing is left running.
    """

    def __init__(self, config: Config) -> None:
        check_routes(config)
        check_data_dir(config.storage.data_dir)
        check_tls(config)
        try:  # each worker selects it again at its start; a backend that cannot run stops the start here
            ArrayBackend.select(config.imaging.array_backend)
        except ImagingError as exc:
            raise ConfigError(f"imaging.array_backend: {exc}") from None
        self.config = config
        data = config.storage.data_dir
        os.umask(0o077)  # spool, outbox, ledger, logs: files 0600 and folders 0700, in workers too
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        data.chmod(0o700)  # a data_dir made before: nothing under it is reachable by others
        self.ledger = Ledger.of_config(config)
        self.network = NetworkStore(self.ledger)
        self.network.seed(config)
        self.routes = RouteStore(self.ledger, config, self.network)
        self.routes.seed(config)
        self.routes.check()  # rules changed through the API may name a destination removed since
        self.spool = Spool(data / "spool", config.storage.min_free_mb * 2**20)
        (data / "outbox").mkdir(exist_ok=True)
        self.scp = StorageSCP(
            scp_settings(config), self.network.policy, self.spool, LedgerListener(self.ledger),
            RetrieveInbox(data / RETRIEVE_DIR),
        )
        self.sender_settings = sender_settings(config, self.network.policy().ae_title)
        self.dispatcher = SendDispatcher(self.ledger, self.network, config.sender, self.sender_settings)
        self.scheduler = Scheduler(config, self.ledger, self.spool, self.dispatcher, self.routes.routes)
        self.workers = WorkerPool(config, self._worker_died)
        self.api_context = ApiContext(config, self.ledger, self.network, admin_token(config), self.sender_settings,
                                      routes=self.routes)
        self._http: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        # a PostgreSQL ledger is shared by nodes that share data_dir (docs/deployment.md): one lock per node
        self._lock = ServiceLock(data if config.ledger.url is None else _node_dir(config))
        self._exporter: AuditExporter | None = None

    def _worker_died(self, name: str) -> None:
        n = self.ledger.requeue_running_jobs(name, max_attempts=self.config.workers.max_job_tries)
        if n:
            LOGGER.warning("%d job(s) of dead worker %s re-queued", n, name)

    def start(self) -> None:
        """Take the data directory, bind both ports, resume from the ledger, then start everything.

        Raises:
            StartupError: another service holds the data directory, or a port cannot be bound.
        """
        self._lock.acquire()
        try:
            http_socket = bind_http(self.config.http.host, self.config.http.port)
        except StartupError:
            self._lock.release()
            raise
        recovered = recover_spool(self.spool, self.ledger)
        jobs = self.ledger.requeue_running_jobs(max_attempts=self.config.workers.max_job_tries)
        sends = self.ledger.requeue_sending()
        if recovered or jobs or sends:
            LOGGER.info("resuming: %d instances recovered, %d jobs and %d sends re-queued", recovered, jobs, sends)
        try:
            self.scp.start()
        except (OSError, ssl.SSLError) as exc:
            http_socket.close()
            self._lock.release()
            settings = self.scp.settings
            raise StartupError(port_message("DICOM", settings.host, settings.port, exc)) from None
        self.ledger.audit("service", "service started", {"recovered": recovered, "jobs": jobs, "sends": sends})
        if self.config.audit.syslog:
            self._exporter = AuditExporter(self.ledger, self.config.audit.syslog, self.network.policy().ae_title,
                                           tls=self.config.audit.tls)
            self._exporter.start()
        self.workers.start()
        self.scheduler.start()
        self._start_http(http_socket)

    def _start_http(self, sock: socket.socket) -> None:
        app = create_app(self.api_context)
        http = self.config.http
        cfg = uvicorn.Config(app, host=http.host, port=http.port, log_level="warning", access_log=False,
                             lifespan="off", ssl_certfile=http.tls_cert, ssl_keyfile=http.tls_key)
        self._http = uvicorn.Server(cfg)
        self._http_thread = threading.Thread(target=self._http.run, kwargs={"sockets": [sock]}, name="aiws-http",
                                             daemon=True)
        self._http_thread.start()
        LOGGER.info("HTTP API on %s://%s:%d", "https" if http.https else "http", http.host, http.port)
        if not list_accounts(self.ledger):
            # worded for the log filter (pacs_bridge.scrub), which would hide an option or a file name as a value
            LOGGER.warning("no console account yet: create the first admin account with the command aiws user add "
                           "(the guide for PACS administrators, Accounts, roles and HTTPS), then sign in at /console/; "
                           "the API takes the admin token kept in the data_dir, file admin_token")
        if http.host not in ("127.0.0.1", "::1", "localhost"):
            if not http.https:
                LOGGER.warning("HTTP API on %s without HTTPS: set [http] tls_cert and tls_key, or keep it behind "
                               "a TLS reverse proxy", http.host)
            if not http.trusted_hosts:
                LOGGER.warning("HTTP API on %s answers any Host header: set [http] trusted_hosts", http.host)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        LOGGER.info("stopping")
        if self._http is not None:
            self._http.should_exit = True
        self.scp.stop()
        self.scheduler.stop()
        for name in self.workers.stop(self.config.workers.stop_grace_seconds):
            if self.ledger.requeue_running_jobs(name):
                LOGGER.info("the job of worker %s goes back to the queue", name)
        self.dispatcher.stop()
        if self._http_thread is not None:
            self._http_thread.join(10)
        self.ledger.audit("service", "service stopped", {})
        if self._exporter is not None:
            self._exporter.stop()
        self._lock.release()

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        done.wait()
        self.stop()
