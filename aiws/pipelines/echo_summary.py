"""``echo_summary``: a built-in pipeline that proves the loop end to end without a network.

It writes one Secondary Capture into the study saying which series arrived,
so a PACS administrator sees a result in the viewer minutes after sending.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw
from pydicom import dcmread

from imaging.capture import DrawnText, display_font
from imaging.display import wrap
from imaging.legacy import normalise_legacy_values
from imaging.provenance import PATIENT_STUDY_KEYWORDS, algorithm_version
from imaging.uids import device_uid, result_uids
from models.errors import NoSuitableSeries
from models.pipeline import OutputFile, PipelineOutput, PipelineRequest

LOGGER = logging.getLogger(__name__)

_WIDTH, _LINE, _FONT, _MARGIN = 1024, 30, 22, 20


def render_layout(lines: list[str]) -> tuple[np.ndarray, list[DrawnText]]:
    """White-on-black text (the first line in amber), RGB uint8, readable at 1:1; each line wrapped to
    the page width (continuations indented); returns the page and every text line drawn."""
    font = display_font(_FONT)
    drawn: list[tuple[DrawnText, tuple[int, int, int]]] = []
    for i, line in enumerate(lines):
        colour = (255, 200, 0) if i == 0 else (255, 255, 255)
        indent = len(line) - len(line.lstrip(" "))
        x = _MARGIN + font.getlength(line[:indent])
        for j, part in enumerate(wrap(line.strip(), font.getlength, _WIDTH - x - _MARGIN - 24)):
            drawn.append((DrawnText(x + (24 if j else 0), 20 + len(drawn) * _LINE, part, _FONT), colour))
    img = Image.new("RGB", (_WIDTH, max(256, 40 + _LINE * len(drawn))), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for text, colour in drawn:
        draw.text((text.x, text.y), text.text, fill=colour, font=font)
    return np.asarray(img, dtype=np.uint8), [t for t, _ in drawn]


def _render(lines: list[str]) -> np.ndarray:
    return render_layout(lines)[0]


class EchoSummary:
    name = "echo_summary"
    version = algorithm_version("1.0.0")  # no model: the software version alone

    def run(self, request: PipelineRequest) -> PipelineOutput:
        t0 = time.perf_counter()
        headers = {uid: dcmread(files[0], stop_before_pixels=True) for uid, files in request.series.items() if files}
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
        series_uid, sop_uid = result_uids(request.uid_root, request.study_uid, self.name, self.version, "sc")
        equipment = hd.ContributingEquipment(
            manufacturer=request.manufacturer,
            purpose_of_reference=hd.sr.CodedConcept("109102", "DCM", "Processing Equipment"),
            manufacturer_model_name=self.name,
            software_versions=self.version,
        )
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref,
            pixel_array=_render(lines),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=("L", "P"),
            series_instance_uid=series_uid,
            series_number=9900,
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer=request.manufacturer,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            contributing_equipment=[equipment],
        )
        sc.PatientOrientation = ""  # a text page has no anatomical orientation (Type 2: empty)
        sc.Laterality = ""  # General Series Type 2C: unknown for a study-level summary
        sc.SeriesDescription = f"AIWS {self.name} {self.version}"
        sc.ManufacturerModelName, sc.SoftwareVersions = self.name, self.version  # as every output names it
        sc.DeviceUID = device_uid(request.uid_root, self.name, self.version)
        sc.BurnedInAnnotation = "YES"
        path = request.out_dir / f"{sop_uid}.dcm"
        sc.save_as(path, enforce_file_format=True)
        LOGGER.info("study %s: %s wrote %s", request.study_uid, self.name, sop_uid)
        return PipelineOutput(
            files=(OutputFile("sc", path),),
            summary={"series": len(headers), "instances": sum(counts.values())},
            timings_s={"total": time.perf_counter() - t0},
        )
