"""``echo_summary``: a built-in pipeline that proves the loop end to end without a network.

It writes one Secondary Capture into the study saying which series arrived,
so a PACS administrator sees a result in the viewer minutes after sending.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.layouts.text import render_text_page as render_layout
from imaging.legacy import normalise_legacy_values
from imaging.provenance import PATIENT_STUDY_KEYWORDS, algorithm_version, save_result
from imaging.results import RenderedPage, ResultContext
from imaging.sc import write_page_capture
from models.errors import NoSuitableSeries
from models.pipeline import NoSettings, OutputFile, PipelineOutput, PipelineRequest, PriorSpec

LOGGER = logging.getLogger(__name__)

__all__ = ["EchoSummary", "render_layout"]


def _header(path: Path, request: PipelineRequest) -> Dataset:
    """The header read at the study's completion (its file unchanged since), else read now."""
    inst = request.headers.get(path)
    return inst.dataset if inst is not None and inst.is_current() else dcmread(path, stop_before_pixels=True)


def _render(lines: list[str]) -> np.ndarray:
    return render_layout(lines)[0]


class EchoSummary:
    name = "echo_summary"
    version = algorithm_version("1.0.0")  # no model: the software version alone
    settings_model = NoSettings
    prior_spec: PriorSpec | None = None

    def run(self, request: PipelineRequest) -> PipelineOutput:
        t0 = time.perf_counter()
        headers = {uid: _header(files[0], request) for uid, files in request.series.items() if files}
        for header in headers.values():  # legacy forms (a time with colons …) that the SC writer refuses
            normalise_legacy_values(header, PATIENT_STUDY_KEYWORDS)
        if not headers:
            raise NoSuitableSeries(f"study {request.study_uid}: no instances routed to {self.name}")
        counts = Counter({uid: len(files) for uid, files in request.series.items()})
        lines = [
            f"AIWS {self.name} {self.version} - computer-generated summary, not a diagnosis",
            f"Received {len(headers)} series, {sum(counts.values())} instances",
        ]
        for uid, ds in sorted(headers.items(), key=lambda kv: int(kv[1].get("SeriesNumber", 0) or 0)):
            lines.append(
                f"  #{ds.get('SeriesNumber', '?')} {ds.get('Modality', '?')} "
                f"{ds.get('SeriesDescription', '')}: {counts[uid]} instances"
            )
        ref = next(iter(headers.values()))
        context = ResultContext(uid_root=request.uid_root, pipeline=self.name, model_version=self.version,
                                manufacturer=request.manufacturer, institution_name=request.institution_name)
        sc = write_page_capture(RenderedPage(_render(lines), ref), context)
        written = save_result("sc", sc, request.out_dir)
        LOGGER.info("study %s: %s wrote %s", request.study_uid, self.name, written.sop_instance_uid)
        return PipelineOutput(
            files=(OutputFile.of(written),),
            summary={"series": len(headers), "instances": sum(counts.values())},
            timings_s={"total": time.perf_counter() - t0},
        )
