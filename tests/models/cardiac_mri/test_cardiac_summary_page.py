"""What qualifies the cardiac result is on the summary page a radiologist reads (issue 21): the RV values
with their reference flags (Kawel-Boehm 2015) beside them, like the LV's, and why no indexed values are
shown when the body surface area is not computed (the job summary's ``bsa_note``)."""
from __future__ import annotations

import dataclasses

import pytest

from models.cardiac_mri.findings import CardiacFindings
from models.cardiac_mri.function import cardiac_function, volume_curve_ml
from models.cardiac_mri.pipeline import masks_of
from models.cardiac_mri.summary import render_layout
from training.cardiac_mri.phantom import make_params, render_all


@pytest.fixture(scope="module")
def phantom():  # type: ignore[no-untyped-def]
    params = make_params(1)
    images, labels = render_all(params)
    masks = masks_of(labels)
    findings = CardiacFindings(cardiac_function(masks, params.geometry), labels,
                               volume_curve_ml(masks.lv_pool, params.geometry),
                               volume_curve_ml(masks.rv_pool, params.geometry), tuple(params.trigger_times_ms),
                               params.sex, "cardiac_mri test")
    return images, findings


def _rows(texts: list) -> dict[str, str]:  # type: ignore[type-arg]
    """Table label -> the flag drawn on its row ("" when none)."""
    by_y: dict[float, list[str]] = {}
    for t in texts:
        by_y.setdefault(t.y, []).append(t.text)
    return {line[0]: (line[2] if len(line) == 3 else "") for line in by_y.values()}


def test_rv_flags_are_drawn_beside_the_rv_values(phantom) -> None:  # type: ignore[no-untyped-def]
    images, findings = phantom
    flags = findings.summary()["flags"]
    assert {"RVEDV", "RVESV", "RVEF"} <= set(flags)  # the phantom's RV is outside the ranges
    _, texts = render_layout(images, findings)
    rows = _rows(texts)
    labels = {m.key: m.label for m in findings.measures()}
    for key in ("RVEDV", "RVESV", "RVEF"):
        assert rows[labels[key]] == f"[{flags[key]}]", key
    assert rows[labels["RVSV"]] == ""  # no reference range: no flag


def test_bsa_note_is_on_the_page_only_without_bsa(phantom) -> None:  # type: ignore[no-untyped-def]
    images, findings = phantom
    assert "bsa_note" in findings.summary()
    _, texts = render_layout(images, findings)
    page = " ".join(t.text for t in texts)
    assert "No indexed values: body surface area not computed" in page and "Patient's Size 0.3-2.5 m" in page
    with_bsa = dataclasses.replace(findings, function=dataclasses.replace(findings.function, bsa_m2=1.8))
    assert "bsa_note" not in with_bsa.summary()
    _, texts = render_layout(images, with_bsa)
    page = " ".join(t.text for t in texts)
    assert "body surface area not computed" not in page and "LV EDV index" in page
