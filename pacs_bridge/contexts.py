"""Presentation contexts: every storage SOP class with the usual transfer syntaxes."""
from __future__ import annotations

from pydicom import uid
from pynetdicom import StoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification

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


def storage_contexts() -> list[PresentationContext]:
    """Contexts the SCP supports: Verification plus every storage SOP class."""
    contexts = [build_context(Verification)]
    for cx in StoragePresentationContexts:
        contexts.append(build_context(cx.abstract_syntax, list(STORAGE_TRANSFER_SYNTAXES)))
    return contexts
