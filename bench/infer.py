"""Inference benchmark for the lung-nodule network on a 300-slice chest CT (1 mm slices).

In one run, the same sliding-window code (same patches, same batches) with three backends:
(a) torch eager (the trained MONAI module, weights read back from the shipped ONNX file),
(b) ONNX Runtime in-process (the service default), (c) Triton over gRPC, tensors inside the
messages and (d) through system shared memory (``triton_shared_memory``), when the pytriton server
in ``.venv-triton`` can be started (Python-backend twin running the same ONNX file). Triton keeps two
requests in flight (``requests_in_flight``), as every runtime does; the "1req" rows keep one, for comparison.
Prints seconds and the ratios eager/ORT (target >= 1.5 on the CPU) and Triton/ORT (target: overhead
<= 15 %), and checks the outputs agree.

Then, for every pipeline, a phantom study sent into the real service (``aiws serve``, results to
Orthanc): study complete -> results sent, with the share of each stage (see ``bench/_e2e.py``):
lung_nodules (the same 300-slice CT), coronary_ct (calcium-score CT), cardiac_mri (short-axis cine),
mammography (four views).

``--compare-previous``: for each pipeline whose model has more than one version in the repository, two services
side by side, one pinned to the previous version and one to the latest (a pinned copy of the repository, see
``bench/_e2e.py``; ``triton_repo/`` is not changed), the same studies sent to each in turn (the order swapped every
round); prints both reports and the ratio latest/previous of the medians (target <= 1.20: the issue-28 bar that no
pipeline gets more than 20 % slower end to end). A pipeline whose models have one version each gets its ordinary run.

Run: ``make bench`` or ``.venv/bin/python bench/infer.py [--repeat 2] [--no-triton] [--no-backends] [--version N]
[--pipelines lung_nodules,coronary_ct,cardiac_mri,mammography | none] [--compare-previous]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _e2e import ROOT, changed_models, pinned_repository, report, send_and_time, service
from aiws.model_versions import PIPELINE_MODELS
from models.errors import ModelError
from models.lung_nodules.geometry import Grid
from models.lung_nodules.inference import MODEL_NAME, input_spec
from models.lung_nodules.preprocess import to_network_grid
from models.runtime import ModelRepository, SlidingWindow, sliding_window_inference
from models.runtime.base import Arrays, InferenceRuntime
from models.runtime.model_config import ModelSpec
from models.runtime.ort import OnnxRuntime
from training.cardiac_mri import dicom as cine_dicom
from training.cardiac_mri.phantom import make_params, render_all
from training.coronary_ct import dicom as ct_dicom
from training.coronary_ct.phantom import make_phantom
from training.ct_dicom import CtSeriesInfo, write_ct_series
from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from training.mammography.dicom import MgStudyOptions, write_exam
from training.mammography.phantom import PhantomConfig as MgPhantomConfig
from training.mammography.phantom import make_exam

SLICES = 300
PIPELINES = ("lung_nodules", "coronary_ct", "cardiac_mri", "mammography")
TARGET_RATIO = 1.20  # issue 28: no pipeline more than 20 % slower end to end


class TorchRuntime(InferenceRuntime):
    """torch eager behind the runtime interface, so the sliding window is identical for every backend."""

    backend = "torch"

    def __init__(self, repository: ModelRepository, module: Any, threads: int) -> None:
        import torch

        super().__init__(repository)
        torch.set_num_threads(threads)
        self.module = module.eval()

    def _run_batch(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(inputs[spec.inputs[0].name])))
        return {spec.outputs[0].name: out.numpy()}


def ct_volume(seed: int) -> tuple[np.ndarray, Grid]:
    """A whole-chest phantom with 1 mm slices, padded or cut to exactly 300 slices."""
    phantom = generate_phantom(seed, PhantomConfig(slice_mm=(1.0, 1.0), pixel_mm=(0.75, 0.75), nodules=(3, 3)))
    hu = phantom.hu
    if hu.shape[0] < SLICES:
        hu = np.pad(hu, [(0, SLICES - hu.shape[0]), (0, 0), (0, 0)], mode="edge")
    hu = hu[:SLICES]
    return hu, Grid(hu.shape, phantom.grid.affine)  # type: ignore[arg-type]


def torch_module(repo: ModelRepository, version: int) -> Any:
    """The MONAI network of the shipped version, weights loaded from its ONNX file."""
    import json

    from models.lung_nodules.network import NetworkConfig, build_network, probability_head
    from training.lung_nodules.export import load_weights_from_onnx

    card = json.loads(repo.card_path(MODEL_NAME, version).with_name("model_card.json").read_text())
    raw = card["provenance"]["training_config"]["network"]
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    net = build_network(NetworkConfig(**fields))
    head = probability_head(net)
    load_weights_from_onnx(head, repo.model_path(MODEL_NAME, version))
    return head


def timed(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    assert out is not None
    return statistics.median(times), out


def triton_runtimes(repo_root: Path, work: Path) -> tuple[Any, dict[str, Any]] | None:
    from models.runtime.triton import TritonRuntime
    from triton_server import TritonServer, triton_available

    if not triton_available():
        print("triton: skipped (no .venv-triton; run 'make setup')")
        return None
    server = TritonServer(work / "triton", repo_root).start(wait_models=(MODEL_NAME,))
    repo = ModelRepository(repo_root)
    return server, {"triton grpc 1req": TritonRuntime(repo, server.grpc_url, "grpc", 300, requests_in_flight=1),
                    "triton grpc": TritonRuntime(repo, server.grpc_url, "grpc", timeout_seconds=300),
                    "triton grpc+shm": TritonRuntime(repo, server.grpc_url, "grpc", 300, shared_memory=True)}


@dataclass(frozen=True)
class StudyKind:
    """One pipeline's benchmark study: route modality, how to write study *i* into a folder, stages timed."""

    title: str
    modality: str
    write: Callable[[Path, int], list[Path]]
    stages: tuple[str, ...] = ("load", "network", "measures", "writing")


def study_kinds(lung_ct: tuple[np.ndarray, Grid] | None) -> dict[str, StudyKind]:
    """Each pipeline's study; lung_nodules only with *lung_ct*."""

    def lung(work: Path, i: int) -> list[Path]:
        if lung_ct is None:
            raise ValueError("lung_nodules: no CT volume given to study_kinds")
        hu, grid = lung_ct
        return write_ct_series(hu, grid.affine, work / f"ct{i}", CtSeriesInfo(seed_text=f"bench-lung-{i}"))

    def cardiac(work: Path, i: int) -> list[Path]:
        params = make_params(50_000 + i)
        return cine_dicom.write_series(params, render_all(params)[0], work / f"mr{i}")

    def mammo(work: Path, i: int) -> list[Path]:
        exam = make_exam(40_000 + i, MgPhantomConfig(spacing_mm=0.1, lesion_rate=0.5))
        return write_exam(exam, work / f"mg{i}", MgStudyOptions(magnification=1.0))

    slices = lung_ct[0].shape[0] if lung_ct is not None else SLICES
    return {
        "lung_nodules": StudyKind(f"lung_nodules, {slices}-slice chest CT", "CT", lung,
                                  ("load", "preprocess", "network", "classifier", "measures", "writing")),
        "coronary_ct": StudyKind("coronary_ct, calcium-score CT phantom (2.5-3 mm)", "CT",
                                 lambda work, i: ct_dicom.write_series(make_phantom(50_000 + i), work / f"cac{i}")),
        "cardiac_mri": StudyKind("cardiac_mri, short-axis cine phantom", "MR", cardiac),
        "mammography": StudyKind("mammography, 4-view study (0.1 mm pixels)", "MG", mammo,
                                 ("load", "preprocess", "network", "analysis", "writing")),
    }


def end_to_end(pipeline: str, kind: StudyKind, repeat: int, repo: Path) -> None:
    """*repeat* studies (after one warm-up) into ``aiws serve`` routing *kind* to *pipeline*; prints the report."""
    with tempfile.TemporaryDirectory(prefix=f"aiws-bench-{pipeline}-") as tmp:
        work = Path(tmp)
        with service(work, [(pipeline, kind.modality)], repo) as aiws:
            runs = [send_and_time(aiws, kind.write(work, i)) for i in range(repeat + 1)][1:]
    report(kind.title, runs, kind.stages)


@dataclass(frozen=True)
class Comparison:
    pipeline: str
    pins: dict[str, tuple[int, int]]  # model -> (previous, latest)
    previous_s: float  # median study complete -> results sent
    latest_s: float

    @property
    def ratio(self) -> float:
        return self.latest_s / self.previous_s


def compare_previous(pipeline: str, kind: StudyKind, repeat: int, source: Path) -> Comparison | None:
    """The same *repeat* studies (after one warm-up round) into two services, one with the changed models of
    *pipeline* pinned to their previous version and one to their latest, alternating; prints both reports and
    the ratio. None (after an ordinary run) when no model of *pipeline* has two versions."""
    pins = changed_models(ModelRepository(source), pipeline)
    if not pins:
        counts = ", ".join(f"{m} v{ModelRepository(source).versions(m)}" for m in PIPELINE_MODELS[pipeline])
        print(f"{pipeline}: one version per model ({counts}): nothing to compare; ordinary run")
        end_to_end(pipeline, kind, repeat, source)
        return None
    named = PIPELINE_MODELS[pipeline][0]  # the model whose version the job summary names (model_version)
    runs: dict[str, list[dict[str, float]]] = {"previous": [], "latest": []}
    with tempfile.TemporaryDirectory(prefix=f"aiws-bench-{pipeline}-") as tmp, ExitStack() as services:
        work = Path(tmp)
        arms = {}
        for arm, index in (("previous", 0), ("latest", 1)):
            versions = {m: pair[index] for m, pair in pins.items()}
            repo = pinned_repository(source, work / f"repo-{arm}", versions)
            (work / arm).mkdir()
            aiws = services.enter_context(service(work / arm, [(pipeline, kind.modality)], repo.root))
            arms[arm] = (aiws, versions.get(named))
        for i in range(repeat + 1):
            files = kind.write(work, i)
            for arm in ("previous", "latest") if i % 2 == 0 else ("latest", "previous"):
                aiws, expect = arms[arm]
                runs[arm].append(send_and_time(aiws, files, expect_version=expect))
    print(f"{kind.title}: " + ", ".join(f"{m} v{a} (previous) vs v{b} (latest)" for m, (a, b) in pins.items())
          + "; the same studies to both, alternating; round totals (previous, latest) s: "
          + " ".join(f"({p['complete_to_sent']:.2f}, {q['complete_to_sent']:.2f})"
                     for p, q in zip(runs["previous"], runs["latest"])))
    for arm in ("previous", "latest"):
        named_versions = ", ".join(f"{m} v{pair[0 if arm == 'previous' else 1]}" for m, pair in pins.items())
        report(f"{kind.title} [{arm}: {named_versions}]", runs[arm][1:], kind.stages)
    medians = {arm: statistics.median(r["complete_to_sent"] for r in runs[arm][1:]) for arm in runs}
    jobs = {arm: statistics.median(r["job"] for r in runs[arm][1:]) for arm in runs}
    result = Comparison(pipeline, pins, medians["previous"], medians["latest"])
    print(f"  ratio latest / previous, study complete -> results sent: {result.ratio:.2f} "
          f"(target <= {TARGET_RATIO:.2f}: {'met' if result.ratio <= TARGET_RATIO else 'MISSED'}); "
          f"pipeline job: {jobs['latest'] / jobs['previous']:.2f}")
    return result


def print_comparisons(results: list[Comparison]) -> None:
    print(f"{'pipeline':<13} {'model':<26} {'prev':>4} {'latest':>6} {'prev s':>7} {'latest s':>8} {'ratio':>6}  "
          f"target <= {TARGET_RATIO:.2f}")
    for c in results:
        model, (a, b) = next(iter(c.pins.items()))
        print(f"{c.pipeline:<13} {model:<26} {a:>4} {b:>6} {c.previous_s:7.2f} {c.latest_s:8.2f} {c.ratio:6.2f}  "
              f"{'met' if c.ratio <= TARGET_RATIO else 'MISSED'}")


def backends(args: argparse.Namespace) -> tuple[np.ndarray, Grid]:
    """The lung network's sliding window with each backend; prints the table and ratios; returns the CT."""
    repo = ModelRepository(args.repository)
    version = repo.resolve_version(MODEL_NAME, args.version)
    hu, grid = ct_volume(4242)
    image, net_grid = to_network_grid(hu, grid, input_spec(repo.spec(MODEL_NAME)))
    window = SlidingWindow(overlap=0.25, batch_size=repo.spec(MODEL_NAME).max_batch_size)
    print(f"CT: {hu.shape[0]} slices x {hu.shape[1]}x{hu.shape[2]}, network grid {image.shape} (1 mm); "
          f"{MODEL_NAME} v{version}; {args.threads} threads; median of {args.repeat}")
    ort_rt = OnnxRuntime(repo, "cpu", args.threads)
    eager = TorchRuntime(repo, torch_module(repo, version), args.threads)

    def run(rt: InferenceRuntime) -> Callable[[], np.ndarray]:
        return lambda: sliding_window_inference(rt, MODEL_NAME, image, window, version).output

    run(ort_rt)()  # session creation and warm-up outside the timing
    results = {"torch eager": timed(run(eager), args.repeat), "onnxruntime": timed(run(ort_rt), args.repeat)}
    ort_rt.requests_in_flight = 1  # for comparison: no batch blended while the next one runs
    results["onnxruntime 1req"] = timed(run(ort_rt), args.repeat)
    server = None
    with tempfile.TemporaryDirectory(prefix="aiws-bench-infer-") as tmp:
        started = None if args.no_triton else triton_runtimes(args.repository, Path(tmp))
        try:
            if started is not None:
                server, tritons = started
                for name, triton in tritons.items():
                    run(triton)()
                    results[name] = timed(run(triton), args.repeat)
                    triton.close()
        finally:
            if server is not None:
                server.stop()
    base_s, base_out = results["onnxruntime"]
    print(f"{'backend':<16} {'seconds':>8} {'max |diff| vs ORT':>18}")
    for name, (seconds, out) in results.items():
        print(f"{name:<16} {seconds:8.2f} {float(np.abs(out - base_out).max()):18.2e}")
    ratio = results["torch eager"][0] / base_s
    print(f"ratio torch eager / ONNX Runtime = {ratio:.2f} (target >= 1.5)")
    for name in ("triton grpc 1req", "triton grpc", "triton grpc+shm"):
        if name in results:
            overhead = results[name][0] / base_s - 1.0
            print(f"{name} overhead over in-process ONNX Runtime = {overhead * 100:+.1f} % (target <= 15 %)")
    return hu, grid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and ONNX Runtime")
    parser.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--no-backends", action="store_true", help="skip the backend comparison on the lung network")
    parser.add_argument("--pipelines", default=",".join(PIPELINES),
                        help="study complete -> results sent for these pipelines (comma-separated, or none)")
    parser.add_argument("--compare-previous", action="store_true",
                        help="per pipeline: its changed model's previous version against its latest, same run")
    parser.add_argument("--repository", type=Path, default=ROOT / "triton_repo")
    args = parser.parse_args()
    names = [] if args.pipelines == "none" else args.pipelines.split(",")
    unknown = sorted(set(names) - set(PIPELINES))
    if unknown:
        parser.error(f"--pipelines: unknown {', '.join(unknown)} (known: {', '.join(PIPELINES)})")
    lung_ct = None if args.no_backends else backends(args)
    if lung_ct is None and "lung_nodules" in names:
        lung_ct = ct_volume(4242)
    kinds = study_kinds(lung_ct)
    compared, failed = [], []
    for name in names:
        if not args.compare_previous:
            end_to_end(name, kinds[name], max(args.repeat, 2), args.repository)
            continue
        try:
            result = compare_previous(name, kinds[name], max(args.repeat, 2), args.repository)
        except (AssertionError, RuntimeError, ModelError) as exc:  # a version that fails: say so, go on
            print(f"{name}: comparison failed: {type(exc).__name__}: {exc}")
            failed.append(name)
            continue
        compared += [result] if result is not None else []
    if compared:
        print_comparisons(compared)
    for name in failed:
        print(f"{name:<13} comparison FAILED (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
