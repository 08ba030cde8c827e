"""What every pipeline's end-to-end check needs (tests and ``bench/``): the service configuration for
"these pipelines, results to Orthanc", waiting until a study's results are sent, fetching them back
from Orthanc, and reading the measurement groups of a TID 1500 SR."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from peers import AiwsProcess, Orthanc, wait_for

REPO = Path(__file__).resolve().parent.parent / "triton_repo"
#: SOP Class UID -> the kind of result object.
KINDS = {"1.2.840.10008.5.1.4.1.1.88.34": "sr", "1.2.840.10008.5.1.4.1.1.66.4": "seg",
         "1.2.840.10008.5.1.4.1.1.7": "sc", "1.2.840.10008.5.1.4.1.1.11.1": "gsps",
         "1.2.840.10008.5.1.4.1.1.104.1": "pdf"}

_HEAD = """
[dicom]
ae_title = "AIWS"
host = "127.0.0.1"
port = {{dicom_port}}
require_known_source = {known}
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = {pacs_port}
[study]
quiet_seconds = 1
"""
_ROUTE = """
[[routes]]
pipeline = "{pipeline}"
send_to = ["pacs"]
[routes.match]
Modality = "{modality}"
"""
_TAIL = """
[runtime]
model_repository = "{repo}"
{runtime}
[http]
port = {{http_port}}
[storage]
data_dir = "{{data_dir}}"
min_free_mb = 1
"""


def pipeline_config(routes: Sequence[tuple[str, str]], pacs_port: int, *, known_source: bool = True,
                    repo: Path = REPO, runtime: str = "", extra: str = "") -> str:
    """An ``aiws.toml`` (for :class:`peers.AiwsProcess`) routing each (pipeline, Modality regex) to Orthanc
    on *pacs_port*; ``known_source=False`` accepts any calling AE (dcmtk peers in benchmarks).
    *runtime*: more ``[runtime]`` lines; *extra*: more tables at the end (e.g. ``[workers]``)."""
    text = _HEAD.format(known=str(known_source).lower(), pacs_port=pacs_port)
    text += "".join(_ROUTE.format(pipeline=p, modality=m) for p, m in routes)
    return text + _TAIL.format(repo=repo, runtime=runtime) + extra


def study_sent(aiws: AiwsProcess, study_uid: str) -> dict[str, Any] | None:
    """The study (``/api/studies/{uid}``) once its job is done and every send is done, else None.

    Raises:
        AssertionError: the job failed (with its error and the end of the service log).
    """
    study = aiws.api(f"/api/studies/{study_uid}")
    jobs = study["jobs"]
    if jobs and jobs[0]["state"] == "failed":
        raise AssertionError(f"job failed: {jobs[0].get('error')}\n{aiws.log()[-2000:]}")
    done = jobs and jobs[0]["state"] == "done" and study["sends"] and all(s["state"] == "done" for s in study["sends"])
    return study if done else None


def fetch_results(orthanc: Orthanc, study: dict[str, Any], folder: Path) -> list[tuple[Path, Dataset]]:
    """Our result instances of *study* as Orthanc holds them (waits until all have arrived), written to *folder*."""
    wanted = {r["sop_instance_uid"] for r in study["results"]}

    def arrived() -> list[dict[str, Any]] | None:
        found = orthanc.instances_of_study(study["study_uid"])
        return found if wanted <= {i["MainDicomTags"].get("SOPInstanceUID") for i in found} else None

    instances = wait_for(arrived, timeout=60, what="every result in Orthanc")
    back = []
    for inst in instances:
        if inst["MainDicomTags"].get("SOPInstanceUID") in wanted:
            path = folder / f"{inst['ID']}.dcm"
            path.write_bytes(orthanc.file_of(inst["ID"]))
            back.append((path, dcmread(path)))
    return back


def sr_groups(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Measurement groups of a TID 1500 SR: tracking identifier -> {concept code value -> number, coded
    meaning or text}; finding site under its SNOMED code 363698007."""
    groups: dict[str, dict[str, Any]] = {}

    def walk(items: Any, current: dict[str, Any] | None) -> None:
        for item in items:
            code = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "CONTAINER" and code == "125007":  # Measurement Group
                group: dict[str, Any] = {}
                walk(item.get("ContentSequence", []), group)
                groups[group.get("112039", "?")] = group
                continue
            if current is not None:
                if item.ValueType == "TEXT":
                    current[code] = item.TextValue
                elif item.ValueType == "NUM":
                    current[code] = float(item.MeasuredValueSequence[0].NumericValue)
                elif item.ValueType == "CODE":
                    current[code] = item.ConceptCodeSequence[0].CodeMeaning
            walk(item.get("ContentSequence", []), current)

    walk(ds.ContentSequence, None)
    return groups
