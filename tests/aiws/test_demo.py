"""``make demo`` in CI mode (scripts/demo.py --ci): every pipeline's results arrive in the demo's Orthanc, every
plugin answers, the table says so, and nothing is written outside the demo's data folder."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from peers import DCMTK_ENV, Orthanc, have_tool
from scripts.demo_studies import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
#: What each pipeline sends back into the study (SOP Class UID -> kind as in tests/pipeline_e2e.py).
KINDS = {"1.2.840.10008.5.1.4.1.1.88.34": "SR", "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
         "1.2.840.10008.5.1.4.1.1.7": "SC", "1.2.840.10008.5.1.4.1.1.11.1": "GSPS"}
EXPECTED = {"lung_nodules": {"SR", "SEG", "SC"}, "coronary_ct": {"SR", "SEG", "SC"},
            "cardiac_mri": {"SR", "SEG", "SC"}, "mammography": {"SR", "GSPS", "SC"}}

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(not (have_tool("Orthanc") and have_tool("echoscu")), reason="Orthanc, dcmtk")]


def _results_in_pacs(pacs: Orthanc, pipeline: str) -> tuple[set[str], set[str]]:
    """(kinds of our result objects, the studies they are in) for *pipeline*, as Orthanc holds them."""
    found = pacs.post("/tools/find", {"Level": "Instance", "Expand": True,
                                      "Query": {"SeriesDescription": f"AIWS {pipeline}*"}})
    kinds, studies = set(), set()
    for item in found:
        tags = pacs.get(f"/instances/{item['ID']}/simplified-tags")
        kinds.add(KINDS.get(tags["SOPClassUID"], tags["SOPClassUID"]))
        studies.add(tags["StudyInstanceUID"])
    return kinds, studies


def test_demo_ci_mode_brings_every_pipeline_back_into_the_pacs(tmp_path: Path) -> None:
    data, cwd, home = tmp_path / "demo", tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    env = {**DCMTK_ENV, "HOME": str(home)}
    for var in ("XDG_CACHE_HOME", "MPLCONFIGDIR", "TMPDIR"):
        env.pop(var, None)
    demo = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--ci", "--data-dir", str(data)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = demo.communicate(timeout=1000)
    except subprocess.TimeoutExpired:
        demo.terminate()  # SIGTERM: the demo stops its Orthanc and its service on the way out
        stdout, stderr = demo.communicate(timeout=120)
    out = stdout + stderr
    log = data / "aiws.log"
    assert demo.returncode == 0, out[-4000:] + (log.read_text(errors="replace")[-4000:] if log.exists() else "")
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[first:lines.index("", first)]]
    result = {row[1]: row[2] for row in rows}
    assert sorted(result) == sorted((*PIPELINES, "sepsis", "pharmacy", "ed_flow", "or_planning")), out[-3000:]
    assert all("SR" in result[p] for p in PIPELINES) and all(result[p] == "JSON" for p in result
                                                             if p not in PIPELINES), result
    assert "/app/explorer.html#study?uuid=" in out
    assert sorted(p.name for p in cwd.iterdir()) == [] and sorted(p.name for p in home.iterdir()) == []

    # The demo has stopped its Orthanc; a new one on the same storage shows what the PACS received.
    pacs = Orthanc(data / "pacs").start()
    try:
        sources = {pacs.get(f"/studies/{sid}")["MainDicomTags"]["StudyInstanceUID"] for sid in pacs.get("/studies")}
        assert len(sources) == len(PIPELINES)
        for pipeline in PIPELINES:
            kinds, studies = _results_in_pacs(pacs, pipeline)
            assert EXPECTED[pipeline] <= kinds, (pipeline, kinds)
            assert len(studies) == 1 and studies <= sources, pipeline  # back into the study that was sent
    finally:
        pacs.stop()
