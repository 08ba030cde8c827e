"""Settings values the bridge is given by the composition root (never read from files here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TlsSettings:
    """DICOM TLS (PS3.15 B.1): our certificate and key, and the CA that signs peers' certificates."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None  # when set, peers must present a certificate signed by it


@dataclass(frozen=True)
class Source:
    """A peer allowed to send to us.

    ``host`` None accepts the AE title from any address; the composition root builds such a
    source only where the configuration says so explicitly (``any_host = true``).
    """

    ae_title: str
    host: str | None = None


@dataclass(frozen=True)
class Destination:
    """A peer we send results to."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: bool = False
    verify: bool = True  # with tls: the peer's certificate must chain to TlsSettings.ca_file and name host


@dataclass(frozen=True)
class AcceptPolicy:
    """Who may associate with us; re-read at every association request so changes apply live."""

    ae_title: str
    require_known_source: bool
    sources: tuple[Source, ...] = field(default_factory=tuple)

    def refusal(self, calling_ae: str, called_ae: str, peer_ip: str) -> str | None:
        """Return why an association must be rejected, or None when it is accepted."""
        if called_ae.strip() != self.ae_title:
            return f"called AE {called_ae.strip()!r} is not ours ({self.ae_title!r})"
        if not self.require_known_source:
            return None
        calling = calling_ae.strip()
        named = [s for s in self.sources if s.ae_title == calling]
        if not named:
            return f"calling AE {calling!r} is not a configured source"
        if all(s.host is not None and s.host != peer_ip for s in named):
            return f"calling AE {calling!r} is configured for another host, not {peer_ip}"
        return None


@dataclass(frozen=True)
class ScpSettings:
    host: str = "127.0.0.1"
    port: int = 11112
    max_associations: int = 16
    max_associations_per_host: int = 8  # connections open at once from one IP address, pending ones included
    request_timeout_s: float = 10.0  # TLS handshake plus the whole A-ASSOCIATE-RQ, from the accept
    max_pdu_bytes: int = 1_048_576  # 0 = unlimited
    max_dataset_bytes: int = 4 * 2**30  # a larger data set is refused (A700); 0 = unlimited
    network_timeout_s: float = 60.0
    dimse_timeout_s: float = 60.0
    tls: TlsSettings | None = None


@dataclass(frozen=True)
class SenderSettings:
    ae_title: str = "AIWS"
    connect_timeout_s: float = 10.0
    dimse_timeout_s: float = 60.0
    max_pdu_bytes: int = 1_048_576
    tls: TlsSettings | None = None
