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
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread

from imaging.uids import device_uid, result_uids
from models.errors import NoSuitableSeries
from models.pipeline import OutputFile, PipelineOutput, PipelineRequest

LOGGER = logging.getLogger(__name__)

_WIDTH, _LINE = 1024, 30


def _render(lines: list[str]) -> np.ndarray:
    """White-on-black text, RGB uint8, readable at 1:1."""
    height = max(256, 40 + _LINE * len(lines))
    img = Image.new("RGB", (_WIDTH, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=22)
    for i, line in enumerate(lines):
        colour = (255, 200, 0) if i == 0 else (255, 255, 255)
        draw.text((20, 20 + i * _LINE), line, fill=colour, font=font)
    return np.asarray(img, dtype=np.uint8)


class EchoSummary:
    name = "echo_summary"
    version = "1.0.0"

    def run(self, request: PipelineRequest) -> PipelineOutput:
        t0 = time.perf_counter()
        headers = {uid: dcmread(files[0], stop_before_pixels=True) for uid, files in request.series.items() if files}
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
                f"{str(ds.get('SeriesDescription', ''))[:48]}: {counts[uid]} instances"
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
