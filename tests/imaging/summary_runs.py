"""What the summary-layout tests share: every pipeline run in-process on a phantom with the shipped
models, the layouts its renderers drew (recorded by wrapping the renderers, the drawing unchanged),
the written objects, PNG artifacts of every summary image and PDF page, and the golden-image compare."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from imaging.capture import DrawnText, display_font

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "triton_repo"
GOLDEN = Path(__file__).resolve().parent / "golden"
#: Where the rendered PNGs go for review: $AIWS_TEST_ARTIFACTS, else tests/artifacts/ (ignored by git).
ARTIFACTS = Path(os.environ.get("AIWS_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")


@dataclass
class Run:
    """One pipeline's phantom run: written files by kind, and the layouts its renderers drew."""

    name: str
    files: dict[str, list[Path]]
    layouts: list[Any] = field(default_factory=list)
    texts: list[tuple[np.ndarray, list[DrawnText]]] = field(default_factory=list)


def recording(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, sink: list[Any]) -> None:
    """Replace ``module.name`` by a wrapper that appends each result to *sink* and returns it unchanged."""
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        sink.append(result)
        return result

    monkeypatch.setattr(module, name, wrapper)


def by_kind(outputs: Any) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in outputs:
        out.setdefault(f.kind, []).append(Path(f.path))
    return out


def artifact_dir(name: str) -> Path:
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def sc_pixels(path: Path) -> np.ndarray:
    return np.asarray(dcmread(path).pixel_array, dtype=np.uint8)


def pdf_bytes(path: Path) -> bytes:
    ds = dcmread(path)
    return bytes(ds.EncapsulatedDocument)[:int(ds.EncapsulatedDocumentLength)]


def pdf_pages(document: bytes, folder: Path, stem: str, dpi: int = 100) -> list[Path]:
    """The PDF's pages as PNGs (pdftoppm, poppler-utils) in *folder*: ``<stem>-1.png`` …"""
    pdf = folder / f"{stem}.pdf"
    pdf.write_bytes(document)
    for old in folder.glob(f"{stem}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(folder / stem)], check=True, timeout=120)
    return sorted(folder.glob(f"{stem}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def pdf_words(document: bytes, folder: Path, stem: str) -> tuple[list[tuple[float, float]], list[dict[str, Any]]]:
    """(page sizes in pt, words with their page and box) of the PDF, from pdftotext -bbox (poppler-utils)."""
    import xml.etree.ElementTree as ET

    pdf = folder / f"{stem}.pdf"
    pdf.write_bytes(document)
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], check=True, capture_output=True, timeout=120).stdout
    tree = ET.fromstring(html.decode("utf-8").replace("<!DOCTYPE html", "<!-- ").replace('.dtd">', '.dtd" -->'))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    sizes, words = [], []
    for number, page in enumerate(tree.iter(f"{{{ns['h']}}}page"), start=1):
        sizes.append((float(page.get("width", 0)), float(page.get("height", 0))))
        for w in page.iter(f"{{{ns['h']}}}word"):
            words.append({"page": number, "text": w.text or "", **{k: float(w.get(k, 0))
                                                                   for k in ("xMin", "yMin", "xMax", "yMax")}})
    return sizes, words


def text_overflow(texts: list[DrawnText], width: int, height: int) -> list[str]:
    """Texts whose box, measured with the renderer's own font, leaves the *width* × *height* image."""
    bad = []
    for t in texts:
        left, top, right, bottom = display_font(t.size).getbbox(t.text)
        if t.x + left < 0 or t.y + top < 0 or t.x + right > width or t.y + bottom > height:
            bad.append(f"{t.text!r} at ({t.x:.0f}, {t.y:.0f}) size {t.size}: right {t.x + right:.0f} > {width}"
                       f" or bottom {t.y + bottom:.0f} > {height}")
    return bad


def edge_rows_with_ink(pixels: np.ndarray, columns: int = 6) -> list[int]:
    """Rows whose last *columns* pixels are not all one colour: something drawn runs into the right edge."""
    edge = pixels[:, -columns:, :].astype(int)
    return [int(r) for r in np.nonzero(np.any(edge != edge[:, -1:, :], axis=(1, 2)))[0]]


def compare_golden(pixels: np.ndarray, name: str, factor: int = 2) -> None:
    """Compare *pixels* reduced by *factor* with ``golden/<name>.png``: same size, mean absolute difference
    below 1 grey level and at most 0.02 % of the pixels off by more than 64 (a glyph edge rasterised a
    little differently passes; a moved, missing or re-wrapped line of text does not; a changed digit
    may pass: values are the text checks' job). ``AIWS_UPDATE_GOLDEN=1``
    rewrites the golden file instead; the rendered image is kept in the artifacts beside it."""
    small = np.asarray(Image.fromarray(np.asarray(pixels, dtype=np.uint8)).reduce(factor))
    save_png(small, artifact_dir("golden") / f"{name}.png")
    path = GOLDEN / f"{name}.png"
    if os.environ.get("AIWS_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        Image.fromarray(small).save(path, optimize=True)
        return
    assert path.exists(), f"{path} missing: run with AIWS_UPDATE_GOLDEN=1 once and review it"
    golden = np.asarray(Image.open(path).convert("RGB"))
    assert golden.shape == small.shape, f"{name}: size {small.shape} differs from the golden {golden.shape}"
    diff = np.abs(golden.astype(int) - small.astype(int)).max(axis=-1)
    assert diff.mean() < 1.0, f"{name}: mean difference {diff.mean():.2f} (see {ARTIFACTS / 'golden'})"
    assert (diff > 64).mean() <= 0.0002, f"{name}: {(diff > 64).mean():.3%} of the pixels differ"


def each_file(run: Run, kind: str) -> Iterator[Path]:
    yield from run.files.get(kind, [])
