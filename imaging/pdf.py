"""PDF report of the findings (reportlab), wrapped as a DICOM Encapsulated PDF.

A4, laid out for reading: title, the AI-result disclaimer, patient and study (dates as 1960-01-01,
names as "Family, Given"), the findings numbered as on the key images with their measurements in
human units (:mod:`imaging.display`; no internal ids), then the key images themselves with their
numbered markers. Paragraphs wrap to the page; more pages follow when needed, each with the algorithm,
its version and the disclaimer in the footer.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas
from reportlab.platypus import Flowable, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from imaging.capture import finding_locations, image_label, render_key_images
from imaging.display import date_text, finding_details, finding_heading, person_name_text, sex_text
from imaging.mammo import Mammogram
from imaging.provenance import contributing_equipment, copy_patient_study, finish, source_header
from imaging.results import DISCLAIMER_DISPLAY, Finding, ResultContext, Segment
from imaging.volume import Volume

LOGGER = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
_MARGIN, _BOTTOM = 18 * mm, 30 * mm
#: The largest height of a key image on the page.
KEY_IMAGE_MAX_H = 110 * mm
_STYLES = {
    "title": ParagraphStyle("title", fontName="Helvetica-Bold", fontSize=15, leading=19, spaceAfter=6),
    "banner": ParagraphStyle("banner", fontName="Helvetica-Bold", fontSize=11, leading=14, textColor=colors.white),
    "fact": ParagraphStyle("fact", fontName="Helvetica", fontSize=10, leading=13),
    "section": ParagraphStyle("section", fontName="Helvetica-Bold", fontSize=12, leading=15, spaceBefore=10,
                              spaceAfter=4),
    "heading": ParagraphStyle("heading", fontName="Helvetica-Bold", fontSize=10, leading=13, spaceBefore=4,
                              leftIndent=10, firstLineIndent=-10),
    "detail": ParagraphStyle("detail", fontName="Helvetica", fontSize=10, leading=13, leftIndent=24,
                             firstLineIndent=-10),
    "caption": ParagraphStyle("caption", fontName="Helvetica-Oblique", fontSize=9, leading=12, spaceAfter=8),
}


@dataclass(frozen=True, eq=False)
class PdfFigure:
    """A key image for the report: RGB uint8 *pixels* (the image with its markers) and its *caption*."""

    pixels: np.ndarray
    caption: str


def _p(text: str, style: str) -> Paragraph:
    return Paragraph(escape(text), _STYLES[style])


def _facts(header: Dataset) -> list[Flowable]:
    """Patient, study and source series, as a reader writes them."""
    gap = "\u00a0" * 4  # kept by the paragraph, which collapses ordinary spaces
    lines = [
        [f"Patient: {person_name_text(header.get('PatientName', ''))}", f"ID: {header.get('PatientID', '')}",
         f"Born: {date_text(header.get('PatientBirthDate', ''))}", f"Sex: {sex_text(header.get('PatientSex', ''))}"],
        [f"Study: {header.get('StudyDescription', '')}", f"Date: {date_text(header.get('StudyDate', ''))}",
         f"Accession: {header.get('AccessionNumber', '')}"],
        [f"Source series: #{header.get('SeriesNumber', '')} {header.get('Modality', '')} "
         f"{header.get('SeriesDescription', '')}"],
    ]
    return [_p(gap.join(parts), "fact") for parts in lines]


def _findings(findings: Sequence[Finding], where: dict[str, str]) -> list[Flowable]:
    """Numbered as on the key images; each finding kept on one page with its details."""
    out: list[Flowable] = [_p(f"Findings ({len(findings)})" if findings else "No findings", "section")]
    for number, f in enumerate(findings, start=1):
        block = [_p(finding_heading(number, f, where.get(f.tracking_id, "")), "heading")]
        block += [_p(text, "detail") for text in finding_details(f)]
        out.append(KeepTogether(block))
    return out


def _figure(figure: PdfFigure, width: float) -> list[Flowable]:
    rows, cols = figure.pixels.shape[:2]
    scale = min(width / cols, KEY_IMAGE_MAX_H / rows)
    png = io.BytesIO()
    PILImage.fromarray(figure.pixels).save(png, format="PNG")
    png.seek(0)
    image = Image(png, width=cols * scale, height=rows * scale)
    image.hAlign = "LEFT"
    return [KeepTogether([image, _p(figure.caption, "caption")])]


def render_pdf(header: Dataset, findings: Sequence[Finding], context: ResultContext, title: str = "", *,
               figures: Sequence[PdfFigure] = (), where: dict[str, str] | None = None) -> bytes:
    """An A4 PDF: title, disclaimer, patient and study, the findings (numbered as on the key images,
    *where*: tracking id -> image label), the key image *figures*, and the algorithm in every footer."""
    buffer = io.BytesIO()
    heading = title or f"AIWS {context.pipeline} {context.model_version} - AI result report"
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN,
                            bottomMargin=_BOTTOM, title=heading, author=context.manufacturer, invariant=1,
                            pageCompression=0)  # text stays searchable
    banner = Table([[_p(DISCLAIMER_DISPLAY, "banner")]], colWidths=[doc.width])
    banner.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#960000"))]))
    story: list[Flowable] = [_p(heading, "title"), banner, Spacer(1, 8)]
    story += _facts(header) + _findings(findings, where or {})
    if figures:
        story.append(_p("Key images" if len(figures) > 1 else "Key image", "section"))
        for figure in figures:
            story += _figure(figure, doc.width)

    def footer(page: canvas.Canvas, _doc: object) -> None:
        _draw_footer(page, context, doc.width)

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _draw_footer(page: canvas.Canvas, context: ResultContext, width: float) -> None:
    """Algorithm (name, version, parameters), manufacturer, device and disclaimer, wrapped, and the page."""
    algorithm = context.algorithm_id
    params = ", ".join(algorithm.parameter_strings())
    texts = [f"Algorithm: {algorithm.name} {algorithm.version}" + (f" ({params})" if params else ""),
             f"Manufacturer: {context.manufacturer}   Device UID: {context.device_uid}",
             "Computer-generated by AIWS from the images of this study; " + DISCLAIMER_DISPLAY + ".",
             f"Page {page.getPageNumber()}"]
    style = ParagraphStyle("footer", fontName="Helvetica", fontSize=8, leading=10)
    y = _BOTTOM - 8
    page.saveState()
    for text in texts:
        para = Paragraph(escape(text), style)
        _, height = para.wrap(width, _BOTTOM)
        para.drawOn(page, _MARGIN, y - height)
        y -= height
    page.restoreState()


def key_image_figures(source: Volume | Mammogram, findings: Sequence[Finding], *, segments: Sequence[Segment] = (),
                      window: tuple[float, float] | None = None, max_images: int = 4) -> list[PdfFigure]:
    """The key images of the summary capture, cut to the image with its markers, with captions
    naming the image and the findings marked on it."""
    images = render_key_images(source, findings, segments=segments, window=window, max_images=max_images)
    numbers = dict(images[0].numbers) if images else {}
    out = []
    for i, key in enumerate(images, start=1):
        lay = key.layout
        pixels = key.pixels[lay.image_y0:lay.image_y0 + lay.image_height, lay.image_x0:lay.image_x0 + lay.image_width]
        marked = ", ".join(str(numbers[t]) for t in key.tracking_ids)
        what = f"findings {marked}" if len(key.tracking_ids) > 1 else (f"finding {marked}" if marked else "no finding")
        label = image_label(source, key.slice_index)
        out.append(PdfFigure(np.ascontiguousarray(pixels), f"Key image {i} of {len(images)}: {label}, {what}"))
    return out


def write_pdf_report(source: Volume | Mammogram, findings: Sequence[Finding], context: ResultContext, *,
                     title: str = "", segments: Sequence[Segment] = (),
                     window: tuple[float, float] | None = None, max_images: int = 4) -> Dataset:
    """An Encapsulated PDF instance of *findings* with the key images (as the summary capture draws
    them from *segments*, *window*, *max_images*), in a new series of the source study.

    Raises:
        WriteError: the source has no DICOM header with a Study Instance UID, or a finding refers to a
        segment that is not given.
    """
    header = source_header(source.headers, f"PDF for series {source.series_uid}")
    study_uid = str(header.StudyInstanceUID)
    series_uid, sop_uid = context.uids(study_uid, "pdf")
    figures = key_image_figures(source, findings, segments=segments, window=window, max_images=max_images)
    document = render_pdf(header, findings, context, title, figures=figures,
                          where=finding_locations(source, findings, segments))
    now = dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF_STORAGE, sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    copy_patient_study(header, ds)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        ds.setdefault(keyword, "")  # Type 2 in Patient / General Study
    ds.Modality = "DOC"
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, context.series_number("pdf")
    ds.Manufacturer = context.manufacturer
    ds.ConversionType = "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = (title or f"AIWS {context.pipeline} {context.model_version} report")[:64]
    ds.ConceptNameCodeSequence = []
    ds.VerificationFlag = "UNVERIFIED"
    ds.SourceInstanceSequence = [_reference(h) for h in source.headers]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(document)
    ds.ContributingEquipmentSequence = [contributing_equipment(context)]
    LOGGER.info("study %s: %s %s wrote PDF %s (%d findings)", study_uid, context.pipeline, context.model_version,
                sop_uid, len(findings))
    return finish(ds, context, "pdf")


def _reference(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item
