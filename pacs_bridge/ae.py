"""The one place pynetdicom Application Entities are set up: as an SCU (sends, echoes, C-FIND, C-GET,
C-MOVE) with the sender's timeouts and PDU size, and as the storage SCP with its limits."""
from __future__ import annotations

from pynetdicom import AE

from pacs_bridge.contexts import storage_contexts
from pacs_bridge.settings import ScpSettings, SenderSettings


def scu_ae(settings: SenderSettings) -> AE:
    """An AE that requests associations as ``settings.ae_title`` (contexts are added by the caller)."""
    ae = AE(ae_title=settings.ae_title)
    ae.acse_timeout = settings.connect_timeout_s
    ae.connection_timeout = settings.connect_timeout_s
    ae.network_timeout = settings.dimse_timeout_s
    ae.dimse_timeout = settings.dimse_timeout_s
    ae.maximum_pdu_size = settings.max_pdu_bytes
    return ae


def scp_ae(ae_title: str, settings: ScpSettings) -> AE:
    """An AE that accepts the storage contexts (and Verification) with the SCP's limits; the called AE
    title is checked per association against the live policy, not by pynetdicom."""
    ae = AE(ae_title=ae_title)
    ae.supported_contexts = storage_contexts()
    ae.require_called_aet = False
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_bytes
    ae.network_timeout = settings.network_timeout_s
    ae.dimse_timeout = settings.dimse_timeout_s
    return ae
