"""Bridge settings values derived from the configuration."""
from __future__ import annotations

from aiws.config import Config
from pacs_bridge.settings import ScpSettings, SenderSettings, TlsSettings


def tls_settings(config: Config) -> TlsSettings | None:
    tls = config.dicom.tls
    return TlsSettings(tls.cert_file, tls.key_file, tls.ca_file) if tls else None


def dicom_host(config: Config) -> str:
    """The interface the DICOM port listens on: ``dicom.host``, else the same as ``http.host``.

    With neither set that is 127.0.0.1 (this machine only); ``"0.0.0.0"`` listens on every interface.
    """
    return config.dicom.host if config.dicom.host is not None else config.http.host


def scp_settings(config: Config) -> ScpSettings:
    """Settings of the storage SCP: address, limits, timeouts and TLS."""
    dicom = config.dicom
    return ScpSettings(
        host=dicom_host(config),
        port=dicom.port,
        max_associations=dicom.max_associations,
        max_associations_per_host=dicom.max_associations_per_host,
        request_timeout_s=dicom.request_timeout_seconds,
        max_pdu_bytes=dicom.max_pdu_bytes,
        max_dataset_bytes=dicom.max_dataset_mb * 2**20,
        network_timeout_s=dicom.network_timeout_seconds,
        tls=tls_settings(config),
    )


def sender_settings(config: Config, ae_title: str) -> SenderSettings:
    """Settings for outgoing associations, calling as our current AE title."""
    return SenderSettings(ae_title=ae_title, max_pdu_bytes=config.dicom.max_pdu_bytes, tls=tls_settings(config))
