"""Configuration: one TOML file, validated at start-up, plus a few ``AIWS_…`` environment overrides.

Read once in :func:`aiws.cli.main` and passed down; nothing here is global.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiws.errors import ConfigError
from imaging.errors import RuleError
from imaging.rules import MatchRules

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_AE_RE = re.compile(r"^[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]{0,15}$")  # PS3.5 AE VR, no backslash
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UID_ROOT_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_ae_title(value: str) -> str:
    value = value.strip()
    if not _AE_RE.match(value):
        raise ValueError(f"{value!r} is not a valid AE title (1–16 printable characters, no backslash)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


class SourceConfig(_Model):
    ae_title: str
    host: str | None = None  # the address it must come from; required unless any_host = true
    any_host: bool = False  # accept this AE title from every address (trust on the AE title alone)
    port: int | None = Field(default=None, ge=1, le=65535)  # its SCP, for query/retrieve of priors
    query_retrieve: Literal["none", "c-get", "c-move"] = "none"  # c-move: the PACS must know our AE title

    @model_validator(mode="after")
    def _host_or_any_host(self) -> SourceConfig:
        if not (self.host or "").strip() and not self.any_host:
            raise ValueError(f"source {self.ae_title}: no host; write the address it sends from "
                             "(host = \"10.1.2.3\"), or any_host = true to accept it from every address")
        if self.host is not None and self.any_host:
            raise ValueError(f"source {self.ae_title}: host and any_host = true contradict each other")
        return self

    @model_validator(mode="after")
    def _qr_needs_address(self) -> SourceConfig:
        if self.query_retrieve != "none" and (self.host is None or self.port is None):
            raise ValueError(f"source {self.ae_title}: query_retrieve needs host and port")
        return self

    _ae = field_validator("ae_title")(check_ae_title)


class DestinationConfig(_Model):
    name: str
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    verify: bool = True  # with tls: the peer's certificate must chain to [dicom.tls] ca_file and name host
    pdf_report: bool = False  # also send an Encapsulated PDF report to this destination

    _ae = field_validator("ae_title")(check_ae_title)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"{value!r}: use letters, digits, '_', '.', '-' (max 64)")
        return value


class DicomConfig(_Model):
    ae_title: str = "AIWS"
    host: str | None = None  # the interface the DICOM port listens on; None: the same as [http] host
    port: int = Field(default=11112, ge=0, le=65535)
    require_known_source: bool = True
    max_associations: int = Field(default=16, ge=1)
    max_associations_per_host: int = Field(default=8, ge=1)  # open connections from one IP address
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)  # TLS handshake + A-ASSOCIATE-RQ
    max_pdu_bytes: int = Field(default=1_048_576, ge=0)
    max_dataset_mb: int = Field(default=4096, ge=0)  # a larger data set is refused (A700); 0: no limit
    network_timeout_seconds: float = Field(default=60.0, gt=0)
    tls: TlsConfig | None = None
    sources: tuple[SourceConfig, ...] = ()
    destinations: tuple[DestinationConfig, ...] = ()

    _ae = field_validator("ae_title")(check_ae_title)

    @model_validator(mode="after")
    def _unique_destinations(self) -> DicomConfig:
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destination names must be unique, repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _tls_destinations_can_verify(self) -> DicomConfig:
        for d in self.destinations:
            if d.tls and self.tls is None:
                raise ValueError(f"destination {d.name}: tls = true needs [dicom.tls] (cert_file, key_file)")
            if d.tls and d.verify and self.tls is not None and self.tls.ca_file is None:
                raise ValueError(f"destination {d.name}: tls = true verifies the peer against [dicom.tls] "
                                 "ca_file, which is not set; set it, or verify = false on the destination")
        return self


class StudyConfig(_Model):
    quiet_seconds: float = Field(default=30.0, ge=0)


class RouteConfig(_Model):
    pipeline: str
    send_to: tuple[str, ...] = ()
    match: dict[str, str | tuple[float, float]] = Field(default_factory=dict)

    @field_validator("match")
    @classmethod
    def _rules(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            MatchRules.parse(value)
        except RuleError as exc:
            raise ValueError(str(exc)) from exc
        return value

    def rules(self) -> MatchRules:
        return MatchRules.parse(self.match)


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_token: str | None = None  # None: generated once, kept in <data_dir>/admin_token
    tls_cert: Path | None = None  # HTTPS when both are set (PEM certificate chain and its key); HSTS is sent then
    tls_key: Path | None = None
    trusted_hosts: tuple[str, ...] = ()  # Host headers accepted ("aiws.example.org", "*.example.org"); (): any
    open_health: bool = True  # /health without credentials (load balancers, Docker health checks)
    open_metrics: bool = True  # /metrics without credentials (Prometheus)
    session_minutes: float = Field(default=480.0, gt=0)  # a console session ends this long after login
    login_max_failures: int = Field(default=5, ge=1)  # failed logins per account and per address in the window
    login_window_seconds: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _cert_and_key(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("http: tls_cert and tls_key go together (HTTPS needs both)")
        return self

    @property
    def https(self) -> bool:
        return self.tls_cert is not None


class RuntimeConfig(_Model):
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_shared_memory: bool = False  # tensors through POSIX shared memory: only with Triton on this host
    timeout_seconds: float = Field(default=120.0, gt=0)
    model_repository: Path = PROJECT_ROOT / "triton_repo"
    device: Literal["auto", "cpu", "cuda"] = "auto"


class StorageConfig(_Model):
    data_dir: Path = Path("./var")
    min_free_mb: int = Field(default=512, ge=0)
    retention_days: float = Field(default=30.0, gt=0)


class SenderConfig(_Model):
    max_tries: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=5.0, ge=0)
    backoff_max_seconds: float = Field(default=600.0, ge=0)


class WorkersConfig(_Model):
    count: int = Field(default=1, ge=0, le=64)  # 0: receive and route only; jobs wait for a worker
    max_job_tries: int = Field(default=5, ge=1)
    retry_seconds: float = Field(default=30.0, ge=0)
    stop_grace_seconds: float = Field(default=5.0, ge=0, le=300)  # a job still running then resumes at next start


class ImagingConfig(_Model):
    uid_root: str = "2.25"  # UUID-derived UIDs (PS3.5 B.2); set your organisation's root here
    array_backend: Literal["auto", "numpy", "cupy"] = "auto"  # resampling etc.; chosen once per worker at start
    manufacturer: str = "AIWS open-source project"
    institution_name: str = ""

    @field_validator("uid_root")
    @classmethod
    def _root(cls, value: str) -> str:
        value = value.rstrip(".")
        if not _UID_ROOT_RE.match(value) or len(value) > 24:
            raise ValueError(f"{value!r} is not a UID root (digits and dots, at most 24 characters)")
        return value


_SYSLOG_RE = re.compile(r"^(udp|tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):([0-9]{1,5})$")


class SyslogTlsConfig(_Model):
    """``[audit.tls]`` for ``syslog = "tls://host:port"`` (RFC 5425): the collector's certificate must chain to
    *ca_file* (None: the system's CA store) and name *server_name* (default: the host of the URL);
    *cert_file* and *key_file*: our client certificate, for a collector that asks for one."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> SyslogTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the client certificate and its key)")
        return self


class AuditConfig(_Model):
    """``syslog = "udp://host:port"``, ``"tcp://host:port"`` or ``"tls://host:port"``: where the audit trail is
    exported (RFC 5424 frames carrying DICOM PS3.15 A.5 audit messages, see :mod:`aiws.audit`); None: not
    exported. ``tls`` (RFC 5425) takes its settings from ``[audit.tls]``."""
    syslog: str | None = None
    tls: SyslogTlsConfig = SyslogTlsConfig()

    @field_validator("syslog")
    @classmethod
    def _collector(cls, value: str | None) -> str | None:
        m = _SYSLOG_RE.match(value) if value is not None else None
        if value is not None and (m is None or not 1 <= int(m.group(3)) <= 65535):
            raise ValueError(f"{value!r} is not udp://host:port, tcp://host:port or tls://host:port")
        return value


class LedgerConfig(_Model):
    """``url = "postgresql://user@host:port/db"``: the ledger on PostgreSQL, which several nodes may share
    (docs/deployment.md); None: SQLite at ``<data_dir>/aiws.db``. A password belongs in ``~/.pgpass`` or
    ``PGPASSWORD``, not here."""
    url: str | None = None
    sweep_seconds: float = Field(default=5.0, gt=0, le=300)  # how often the claims of dead nodes are taken back

    @field_validator("url")
    @classmethod
    def _postgresql(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("not a PostgreSQL URL (postgresql://user@host:port/database); "
                             "leave it out for SQLite in data_dir")
        return value


class Config(_Model):
    dicom: DicomConfig = DicomConfig()
    study: StudyConfig = StudyConfig()
    routes: tuple[RouteConfig, ...] = ()
    http: HttpConfig = HttpConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    storage: StorageConfig = StorageConfig()
    sender: SenderConfig = SenderConfig()
    workers: WorkersConfig = WorkersConfig()
    imaging: ImagingConfig = ImagingConfig()
    audit: AuditConfig = AuditConfig()
    ledger: LedgerConfig = LedgerConfig()
    pipelines: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _routes_name_destinations(self) -> Config:
        known = {d.name for d in self.dicom.destinations}
        for i, route in enumerate(self.routes):
            for name in route.send_to:
                if name not in known:
                    raise ValueError(f"routes[{i}].send_to: unknown destination {name!r}")
        return self


#: Environment overrides: variable -> dotted key.
ENV_OVERRIDES: dict[str, str] = {
    "AIWS_AE_TITLE": "dicom.ae_title",
    "AIWS_DICOM_HOST": "dicom.host",
    "AIWS_DICOM_PORT": "dicom.port",
    "AIWS_HTTP_HOST": "http.host",
    "AIWS_HTTP_PORT": "http.port",
    "AIWS_ADMIN_TOKEN": "http.admin_token",
    "AIWS_DATA_DIR": "storage.data_dir",
    "AIWS_QUIET_SECONDS": "study.quiet_seconds",
    "AIWS_RUNTIME_BACKEND": "runtime.backend",
    "AIWS_TRITON_URL": "runtime.triton_url",
    "AIWS_MODEL_REPOSITORY": "runtime.model_repository",
    "AIWS_WORKERS": "workers.count",
    "AIWS_LEDGER_URL": "ledger.url",
}


def _set_dotted(raw: dict[str, Any], dotted: str, value: str) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: cannot override, {key} is not a table")
    node[leaf] = value


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{origin}: {loc}: {msg}")
    return "\n".join(lines)


def config_from_mapping(raw: Mapping[str, Any], origin: str = "configuration") -> Config:
    """Validate a parsed TOML mapping.

    Raises:
        ConfigError: one line per problem, each naming the dotted key.
    """
    try:
        return Config.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None


def load_config(path: Path | None, env: Mapping[str, str]) -> Config:
    """Build the configuration from an optional TOML file and environment overrides.

    Relative ``storage.data_dir`` is kept as given (relative to the working directory).

    Raises:
        ConfigError: unreadable file, TOML syntax error, or invalid values.
    """
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    for var, dotted in ENV_OVERRIDES.items():
        if var in env:
            _set_dotted(raw, dotted, env[var])
    return config_from_mapping(raw, origin)
