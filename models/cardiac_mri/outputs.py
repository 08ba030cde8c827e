"""The cardiac result as DICOM: TID 1500 SR, SEG of the ED and ES phases, the summary SC.

SR: an LV group (EDV, ESV, SV, EF, mass, cardiac output/index, indexed values, heart rate, BSA;
UCUM units; LOINC/SNOMED codes where they exist, else the local scheme ``99AIWS``) with the
reference-range comparisons as coded evaluations, and an RV group. SEG: three segments (LV blood
pool, LV myocardium, RV blood pool) at end-diastole and, as a second instance of the same series,
at end-systole. SC: the rendered summary page (contours, volume curve, table).
"""
from __future__ import annotations

import logging

from pydicom.dataset import Dataset

from imaging.provenance import algorithm_version, save_result
from imaging.results import (
    AlgorithmId,
    Code,
    Finding,
    ImageRef,
    Measurement,
    QualitativeEvaluation,
    RenderedPage,
    ResultContext,
    Segment,
)
from imaging.sc import write_page_capture
from imaging.seg import write_seg
from imaging.sr import write_sr
from imaging.volume import Volume
from models.cardiac_mri.cine_io import CineStack
from models.cardiac_mri.findings import CardiacFindings, Measure
from models.cardiac_mri.network import MODEL_NAME
from models.cardiac_mri.reference import Flag
from models.cardiac_mri.summary import render_summary
from models.pipeline import OutputFile, PipelineRequest

LOGGER = logging.getLogger(__name__)

LOCAL = "99AIWS"
CONCEPTS: dict[str, Code] = {
    "LVEDV": Code("18026-5", "LN", "Left Ventricular End Diastolic Volume"),
    "LVESV": Code("18148-7", "LN", "Left Ventricular End Systolic Volume"),
    "LVSV": Code("90096001", "SCT", "Stroke Volume"),
    "LVEF": Code("8811-2", "LN", "Left ventricular ejection fraction by MR"),
    "LVM": Code("18087-7", "LN", "Left Ventricle Mass"),
    "CO": Code("82799009", "SCT", "Cardiac Output"),
    "CI": Code("54993008", "SCT", "Cardiac Index"),
    "HR": Code("8867-4", "LN", "Heart rate"),
    "RVSV": Code("429483009", "SCT", "Right ventricular stroke volume"),
    "RVEF": Code("8818-7", "LN", "Right ventricular ejection fraction by MR"),
}
UNITS: dict[str, Code] = {
    "ml": Code("ml", "UCUM", "milliliter"), "%": Code("%", "UCUM", "percent"), "g": Code("g", "UCUM", "gram"),
    "l/min": Code("l/min", "UCUM", "liter per minute"), "ml/m2": Code("ml/m2", "UCUM", "milliliter per square meter"),
    "g/m2": Code("g/m2", "UCUM", "gram per square meter"),
    "l/min/m2": Code("l/min/m2", "UCUM", "liter per minute per square meter"),
    "/min": Code("/min", "UCUM", "per minute"), "m2": Code("m2", "UCUM", "square meter"),
}
FLAG_CODES = {Flag.LOW: Code("281300000", "SCT", "Below reference range"),
              Flag.NORMAL: Code("281301001", "SCT", "Within reference range"),
              Flag.HIGH: Code("281302008", "SCT", "Above reference range")}
LEFT_VENTRICLE, RIGHT_VENTRICLE = Code("87878005", "SCT", "Left ventricle"), Code("53085002", "SCT", "Right ventricle")
LV_MYOCARDIUM = Code("49848007", "SCT", "Left Ventricle Myocardium")
TISSUE, ANATOMY = Code("85756007", "SCT", "Tissue"), Code("91723000", "SCT", "Anatomical Structure")
BLOOD = Code("87612001", "SCT", "Blood")
PROCEDURE = Code("241620005", "SCT", "Cardiac MRI")


def _concept(m: Measure) -> Code:
    return CONCEPTS.get(m.key) or Code(m.key, LOCAL, m.label)


def _finding(tracking_id: str, kind: Code, measures: list[Measure]) -> Finding:
    evaluations = tuple(QualitativeEvaluation(Code(f"{m.key}-REF", LOCAL, f"{m.label} vs reference range"),
                                              FLAG_CODES[m.flag]) for m in measures if m.flag is not None)
    return Finding(tracking_id=tracking_id, finding_type=kind, finding_site=kind,
                   measurements=tuple(Measurement(_concept(m), round(m.value, 3), UNITS[m.unit]) for m in measures),
                   evaluations=evaluations, label=kind.meaning)


def sr_findings(findings: CardiacFindings) -> list[Finding]:
    measures = findings.measures()
    lv = [m for m in measures if not m.key.startswith("RV")]
    rv = [m for m in measures if m.key.startswith("RV")]
    out = [_finding("lv-function", LEFT_VENTRICLE, lv)]
    if rv:
        out.append(_finding("rv-function", RIGHT_VENTRICLE, rv))
    return out


def context_for(request: PipelineRequest, pipeline: str, version: str, model_version: int) -> ResultContext:
    full = algorithm_version(version, MODEL_NAME, model_version)
    params = (("model", f"cardiac_cine_segmenter v{model_version}"), ("method", "method of discs (thickness + gap)"),
              ("papillary_muscles", "blood pool"), ("ed_es", "largest/smallest LV volume"),
              ("myocardial_density_g_ml", "1.05"), ("bsa", "Mosteller"),
              ("reference", "mean +/- 2 SD; LV Kawel-Boehm 2015; RV Hudsmith 2005 as tabulated in Kawel-Boehm 2015"))
    return ResultContext(uid_root=request.uid_root, pipeline=pipeline, model_version=full,
                         manufacturer=request.manufacturer, institution_name=request.institution_name,
                         algorithm=AlgorithmId(pipeline, full, params))


def phase_segments(stack: CineStack, findings: CardiacFindings, phase: int, name: str
                   ) -> tuple[Volume, list[Segment]]:
    """The cine volume of *phase* and its three segments (LV blood pool, LV myocardium, RV blood pool)."""
    volume = stack.cine.phase_volume(phase)
    labels = findings.labels[phase][_phase_order(stack, volume)]
    segments = []
    for label, structure, kind in ((1, "LV blood pool", BLOOD), (2, "LV myocardium", LV_MYOCARDIUM),
                                   (3, "RV blood pool", BLOOD)):
        segments.append(Segment(label=f"{structure} {name}", category=TISSUE, property_type=kind,
                                mask=labels == label,
                                tracking_id=f"{structure.replace(' ', '-').lower()}-{name.lower()}",
                                anatomic_region=RIGHT_VENTRICLE if label == 3 else LEFT_VENTRICLE))
    return volume, segments


def write_phase_segs(stack: CineStack, findings: CardiacFindings, context: ResultContext) -> list[Dataset]:
    """Two SEG instances in one series: end-diastole (instance 1) and end-systole (instance 2).

    The ES instance takes the next deterministic instance UID of the result context (index 1).
    """
    lv = findings.function.lv
    out = []
    for index, (phase, name) in enumerate(((lv.ed_phase, "ED"), (lv.es_phase, "ES"))):
        volume, segments = phase_segments(stack, findings, phase, name)
        out.append(write_seg(volume, segments, context, index=index,
                             description=f"{name} phase {phase + 1} of {stack.images.shape[0]}"))
    return out


def _phase_order(stack: CineStack, phase_volume: Volume) -> list[int]:
    """Index of each phase-volume slice in the cine's location order (matched by source instance)."""
    by_uid = {s.headers[p].source.sop_instance_uid: k for k, s in enumerate(stack.cine.slices)
              for p in range(len(s.headers))}
    return [by_uid[src.sop_instance_uid] for src in phase_volume.sources if src is not None]


def _page_capture(stack: CineStack, findings: CardiacFindings, context: ResultContext) -> Dataset:
    """The summary page as an RGB Secondary Capture referencing the ED mid-ventricular image."""
    pixels = render_summary(stack.images, findings, f"AIWS {context.pipeline} {context.model_version}")
    ref = stack.cine.slices[len(stack.cine.slices) // 2].headers[findings.function.lv.ed_phase].source
    page = RenderedPage(pixels, ref.header, (ImageRef(ref.sop_class_uid, ref.sop_instance_uid),),
                        derivation=f"Summary of {context.pipeline} {context.model_version}: ED/ES contours, "
                                   "volume curve")
    return write_page_capture(page, context)


def write_outputs(request: PipelineRequest, stack: CineStack, findings: CardiacFindings,
                  identity: tuple[str, str, int]) -> tuple[OutputFile, ...]:
    """Write SEG (ED and ES), SR and the summary SC into ``request.out_dir``.

    Raises:
        WriteError: an object cannot be built or saved.
    """
    context = context_for(request, *identity)
    written = [save_result("seg", seg, request.out_dir) for seg in write_phase_segs(stack, findings, context)]
    ed_volume = stack.cine.phase_volume(findings.function.lv.ed_phase)
    sr = write_sr(ed_volume, sr_findings(findings), context, procedure=PROCEDURE)
    written.append(save_result("sr", sr, request.out_dir))
    written.append(save_result("sc", _page_capture(stack, findings, context), request.out_dir))
    return tuple(OutputFile.of(w) for w in written)
