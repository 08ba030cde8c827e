"""Presentation contexts: every storage SOP class with the usual transfer syntaxes."""
from __future__ import annotations

from pydicom import uid
from pydicom.uid import UID
from pynetdicom import StoragePresentationContexts, build_context, register_uid
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, uid_to_service_class

#: Transfer syntaxes accepted for storage. Compressed ones are kept as received;
#: :mod:`imaging` decodes them with the pylibjpeg plugins.
STORAGE_TRANSFER_SYNTAXES: tuple[str, ...] = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HTJ2KLossless,
    uid.HTJ2KLosslessRPCL,
    uid.HTJ2K,
    uid.RLELossless,
)


def register_storage_classes() -> tuple[str, ...]:
    """Bind pynetdicom's storage service to every storage SOP class we offer that it does not know as
    one (retired classes such as Ultrasound Image Storage (Retired) 1.2.840.10008.5.1.4.1.1.6): without
    this, the context is accepted and the association aborted at the C-STORE. Idempotent; returns the
    UIDs registered by this call."""
    registered = []
    for cx in StoragePresentationContexts:
        sop_class = UID(cx.abstract_syntax)
        if uid_to_service_class(sop_class) is not StorageServiceClass:
            register_uid(sop_class, sop_class.keyword or f"StorageRetired_{sop_class.replace('.', '_')}",
                         StorageServiceClass)
            registered.append(str(sop_class))
    return tuple(registered)


def storage_contexts() -> list[PresentationContext]:
    """Contexts the SCP supports: Verification plus every storage SOP class, each one stored."""
    register_storage_classes()
    contexts = [build_context(Verification)]
    for cx in StoragePresentationContexts:
        contexts.append(build_context(cx.abstract_syntax, list(STORAGE_TRANSFER_SYNTAXES)))
    return contexts
