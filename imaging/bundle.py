"""Write a whole result in one call: SEG (when segments are given), SR, Secondary Capture summary and,
optionally, the PDF report, each saved durably into one directory; the saved objects come back with
their UIDs (:class:`~imaging.results.WrittenObject`)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from imaging.capture import write_summary_capture
from imaging.mammo import Mammogram
from imaging.pdf import write_pdf_report
from imaging.provenance import save_result
from imaging.results import Code, Finding, ResultContext, Segment, WrittenObject
from imaging.seg import write_seg
from imaging.sr import IMAGING_PROCEDURE, write_sr
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleOptions:
    """*pdf*: also write the Encapsulated PDF report. *window*: (centre, width) of the key images.
    *max_key_images*: at most this many summary images. *procedure*: the SR's procedure reported."""

    pdf: bool = False
    window: tuple[float, float] | None = None
    max_key_images: int = 4
    procedure: Code = IMAGING_PROCEDURE


def write_bundle(source: Volume | Mammogram, findings: Sequence[Finding], context: ResultContext, out_dir: Path,
                 *, segments: Sequence[Segment] = (), options: BundleOptions = BundleOptions()) -> list[WrittenObject]:
    """Write and save SEG (if *segments*), SR, SC summary (and PDF) of one result; returns them in that order.

    Raises:
        WriteError: from any writer (see :func:`write_seg`, :func:`write_sr`, ...) or from saving.
    """
    written: list[WrittenObject] = []

    def keep(kind: str, ds: Dataset) -> None:
        written.append(save_result(kind, ds, out_dir))

    seg = write_seg(source, segments, context) if segments else None
    if seg is not None:
        keep("seg", seg)
    keep("sr", write_sr(source, findings, context, seg=seg, procedure=options.procedure))
    for sc in write_summary_capture(source, findings, context, segments=segments, window=options.window,
                                    max_images=options.max_key_images):
        keep("sc", sc)
    if options.pdf:
        keep("pdf", write_pdf_report(source, findings, context, segments=segments, window=options.window,
                                     max_images=options.max_key_images))
    LOGGER.info("study %s: %s %s wrote %d result objects", source.study_uid, context.pipeline,
                context.model_version, len(written))
    return written
