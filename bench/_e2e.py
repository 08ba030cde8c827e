"""Shared by the inference benchmarks: a real service (``aiws serve``) routing to a real PACS (Orthanc), a
study sent with dcmtk ``storescu``, and the time from "study complete" to "results sent" with the share of
each pipeline stage and of what the service adds (queue, sending).

Baseline named in every report: the pipeline job's own wall time; the rest is service overhead.

Comparing model versions (``bench/infer.py --compare-previous``): :func:`pinned_repository` builds a model
repository that serves what ``triton_repo/`` serves except that the changed model is pinned to one version, with
the ``version_policy { specific … }`` that ``aiws model promote`` writes (:mod:`models.runtime.promote`); a
service is pointed at it, and ``triton_repo/`` itself is never touched.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "tests"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from aiws.model_versions import PIPELINE_MODELS  # noqa: E402
from models.runtime.errors import ModelConfigError  # noqa: E402
from models.runtime.promote import check_version, pinned_config_text  # noqa: E402
from models.runtime.repository import CONFIG_NAME, ModelRepository  # noqa: E402
from peers import DCMTK_ENV, AiwsProcess, Orthanc, wait_for  # noqa: E402
from pipeline_e2e import REPO, pipeline_config, study_sent  # noqa: E402


def pinned_repository(source: Path, dest: Path, pins: Mapping[str, int]) -> ModelRepository:
    """A model repository at *dest* (a new folder) serving what *source* serves, except that each model of *pins*
    serves only its pinned version: its ``config.pbtxt`` is *source*'s with ``version_policy { specific … }``
    (:func:`models.runtime.promote.pinned_config_text`, what a promotion writes). Every other model folder, and the
    version folders of a pinned one, are symbolic links into *source*, which is not changed.

    Raises:
        ModelNotFound: a pinned model or version is not in *source*.
        ModelConfigError: a pinned version's ONNX does not match the model's ``config.pbtxt``, or the copy does
            not serve the pinned version.
    """
    src = ModelRepository(source)
    for model, version in pins.items():
        check_version(src, model, version)
    dest.mkdir(parents=True)
    for model in src.models():
        origin = (src.root / model).resolve()
        if model not in pins:
            (dest / model).symlink_to(origin, target_is_directory=True)
            continue
        (dest / model).mkdir()
        for entry in origin.iterdir():
            if entry.name != CONFIG_NAME and not entry.name.startswith("."):
                (dest / model / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        config = src.config_path(model)
        text = pinned_config_text(config.read_text(encoding="utf-8"), str(config), pins[model])
        (dest / model / CONFIG_NAME).write_text(text, encoding="utf-8")
    repo = ModelRepository(dest)
    for model, version in pins.items():
        if repo.served_versions(model) != [version]:
            raise ModelConfigError(f"{dest / model}: serves {repo.served_versions(model)}, not version {version}")
    return repo


def changed_models(repo: ModelRepository, pipeline: str) -> dict[str, tuple[int, int]]:
    """The models of *pipeline* with more than one version in *repo*: model -> (previous, latest) version on disk.

    A model whose versions another model's version names (``version_policy { all }``, e.g. the lung nodule
    classifier) is left out: pinning its policy would not change what the pipeline runs.
    """
    out = {}
    for model in PIPELINE_MODELS.get(pipeline, ()):
        versions = repo.versions(model)
        if len(versions) > 1 and repo.spec(model).version_policy.kind != "all":
            out[model] = (versions[-2], versions[-1])
    return out


@contextmanager
def service(work: Path, routes: Sequence[tuple[str, str]], repo: Path = REPO) -> Iterator[AiwsProcess]:
    """Orthanc and ``aiws serve`` (any calling AE accepted) routing each (pipeline, Modality) to Orthanc, with the
    model repository *repo*."""
    orthanc = Orthanc(work / "orthanc").start()
    (work / "aiws").mkdir()
    aiws = AiwsProcess(work / "aiws", pipeline_config(routes, orthanc.dicom_port, known_source=False, repo=repo))
    try:
        aiws.start()
        yield aiws
    finally:
        aiws.stop()
        orthanc.stop()


def send_and_time(aiws: AiwsProcess, files: Sequence[Path], timeout_s: float = 900,
                  expect_version: int | None = None) -> dict[str, float]:
    """Send *files* (one study) with ``storescu``; seconds from study complete to the last result sent,
    split into queue, the job (and its stages from the job summary's ``timings_s``) and sending.
    *expect_version*: the model version the job must name (job summary ``model_version``).

    Raises:
        RuntimeError: storescu failed, or the job ran another model version; AssertionError: the job failed.
    """
    from pydicom import dcmread

    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    out = subprocess.run(["storescu", "-aet", "BENCH", "-aec", "AIWS", "127.0.0.1", str(aiws.dicom_port),
                          *[str(f) for f in files]], capture_output=True, text=True, env=DCMTK_ENV)
    if out.returncode != 0:
        raise RuntimeError(f"storescu failed: {out.stderr[-500:]}")
    study = wait_for(lambda: study_sent(aiws, study_uid), timeout=timeout_s, interval=0.2, what="results sent")
    job = study["jobs"][0]
    if expect_version is not None and job["summary"].get("model_version") != expect_version:
        raise RuntimeError(f"study {study_uid}: the job ran model version {job['summary'].get('model_version')}, "
                           f"not the pinned {expect_version}")
    last_send = max(s["done_at"] for s in study["sends"])
    figures = {"complete_to_sent": last_send - study["completed_at"],
               "queue": job["started_at"] - study["completed_at"],
               "job": job["finished_at"] - job["started_at"],
               "sending": last_send - job["finished_at"]}
    figures.update({k: float(v) for k, v in job["summary"]["timings_s"].items()})
    return figures


def report(name: str, runs: Sequence[dict[str, float]], stages: Sequence[str]) -> None:
    """Print the medians of *runs*: total, then queue, each stage, sending and the rest, in s and % of the
    median total (medians of parts need not add up to the median total)."""
    rows = [{**r, "other": r["complete_to_sent"] - r["queue"] - r["sending"] - sum(r.get(k, 0.0) for k in stages)}
            for r in runs]  # per run, so that the medians below are each of a real quantity
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    total = median["complete_to_sent"]
    print(f"{name}: median of {len(runs)} (first run discarded)")
    print(f"  study complete -> results sent: {total:6.2f} s (pipeline job {median['job']:.2f} s = baseline)")
    for key in ("queue", *stages, "sending"):
        if key in median:
            print(f"    {key:<11s} {median[key]:6.2f} s  {100 * median[key] / total:5.1f} %")
    print(f"    {'other':<11s} {median['other']:6.2f} s  {100 * median['other'] / total:5.1f} %  "
          "(job bookkeeping, series grouping)")
    print(f"  service overhead / pipeline job: {total / max(median['job'], 1e-9):.2f}x")
