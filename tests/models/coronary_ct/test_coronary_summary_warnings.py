"""The acquisition warnings (not 120 kVp, not ECG-gated; Agatston 1990, JACC 15:827) are drawn on the
coronary key images, first in every legend, in the warning's own words: a radiologist reading the summary
in a viewer sees that the score is not the published Agatston score (issue 21)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from imaging.capture import LEGEND_PX, WARNING_COLOUR, display_font, legend_notes, render_key_images
from imaging.volume import load_volume
from models.coronary_ct.calcium import Vessel, acquisition_problems, find_lesions, score
from models.coronary_ct.findings import CalciumFindings
from models.coronary_ct.outputs import CALCIUM_WINDOW, result_context, segments_and_findings
from models.coronary_ct.pipeline import CoronaryCalciumPipeline, ecg_gating, tube_voltage_kvp
from models.coronary_ct.volume_io import canonical_hu, scan_geometry
from models.pipeline import PipelineIdentity, PipelineRequest
from models.runtime import RuntimeSettings, make_runtime
from training.coronary_ct.dicom import write_series
from training.coronary_ct.phantom import make_phantom

REPO = Path(__file__).resolve().parents[3] / "triton_repo"


def _series(tmp_path: Path, seed: int, **tags: object) -> tuple[str, tuple[Path, ...]]:
    files = write_series(make_phantom(seed), tmp_path / "in")
    for path in files:
        ds = dcmread(path)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID), tuple(files)


def _legend(tmp_path: Path, kvp: int) -> list[list[str]]:
    """The legend texts of every coronary key image of a gated phantom acquired at *kvp*, rendered from the
    findings and the result context the pipeline writes (every lesion labelled LAD: no network needed)."""
    study_uid, files = _series(tmp_path, 10003, KVP=kvp, CardiacSynchronizationTechnique="PROSPECTIVE")
    header = dcmread(files[0], stop_before_pixels=True)
    volume = load_volume(files)
    hu, canon = canonical_hu(volume)
    geometry = scan_geometry(volume)
    lesions = find_lesions(hu, geometry)
    labels = [Vessel.LAD] * len(lesions)
    findings = CalciumFindings(lesions, labels, score(lesions, labels, geometry, None), "coronary_ct test",
                               tuple(acquisition_problems(tube_voltage_kvp(header), ecg_gating(header))))
    request = PipelineRequest(study_uid, {"s": files}, tmp_path, "2.25")
    context = result_context(request, PipelineIdentity("coronary_ct", "1.0.0", 1), findings)
    segments, groups = segments_and_findings(findings, volume.shape, canon)
    images = render_key_images(volume, groups, segments=segments, title="AIWS coronary_ct", window=CALCIUM_WINDOW,
                               notes=legend_notes(context))
    assert images and lesions
    out = []
    for key in images:
        legend = [t for t in key.texts if t.x >= key.layout.legend_x0]
        assert all(t.x + display_font(t.size).getlength(t.text) <= key.layout.width for t in legend)  # wrapped
        out.append([t.text for t in legend])
    return out


def test_100_kvp_warning_is_the_first_legend_line_of_every_key_image(tmp_path: Path) -> None:
    for texts in _legend(tmp_path, 100):
        # texts[0] is the legend's title; the warning follows, wrapped, before any finding
        joined = " ".join(texts[1:])
        assert texts[1].startswith("Acquired at 100 kVp, not 120 kVp: the 130 HU threshold")
        assert "not comparable with 120 kVp scores or published percentiles" in joined
        assert joined.index("published percentiles") < joined.index("LAD calcium")


def test_120_kvp_gated_has_no_warning_line(tmp_path: Path) -> None:
    for texts in _legend(tmp_path, 120):
        assert not any("kVp" in t or "ECG" in t for t in texts)
        assert not texts[1].startswith("Acquired")


def _warning_pixels(sc_path: Path) -> int:
    """Pixels of the warning colour in the legend of a written summary SC."""
    pixels = dcmread(sc_path).pixel_array
    legend = pixels[:, -LEGEND_PX:].reshape(-1, 3)
    return int(np.all(legend == np.asarray(WARNING_COLOUR, dtype=legend.dtype), axis=1).sum())


@pytest.fixture(scope="module")
def runtime():  # type: ignore[no-untyped-def]
    return make_runtime(RuntimeSettings(model_repository=REPO, device="cpu"))


def test_pipeline_summary_images_carry_the_warning_only_at_100_kvp(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    counts = {}
    for kvp in (100, 120):
        study_uid, files = _series(tmp_path / str(kvp), 10003, KVP=kvp, CardiacSynchronizationTechnique="PROSPECTIVE")
        out = tmp_path / f"out{kvp}"
        out.mkdir()
        result = CoronaryCalciumPipeline(runtime).run(PipelineRequest(study_uid, {"s": files}, out, "2.25"))
        scs = [f.path for f in result.files if f.kind == "sc"]
        assert scs
        counts[kvp] = [_warning_pixels(p) for p in scs]
    assert all(n > 100 for n in counts[100]), counts  # the warning lines, on every key image
    assert counts[120] == [0] * len(counts[120]), counts
