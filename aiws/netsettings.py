"""Bridge settings values derived from the configuration."""
from __future__ import annotations

from aiws.config import Config
from pacs_bridge.settings import SenderSettings, TlsSettings


def tls_settings(config: Config) -> TlsSettings | None:
    tls = config.dicom.tls
    return TlsSettings(tls.cert_file, tls.key_file, tls.ca_file) if tls else None


def sender_settings(config: Config, ae_title: str) -> SenderSettings:
    """Settings for outgoing associations, calling as our current AE title."""
    return SenderSettings(ae_title=ae_title, max_pdu_bytes=config.dicom.max_pdu_bytes, tls=tls_settings(config))
