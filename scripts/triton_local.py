"""Serve ``triton_repo/`` with a real Triton server on this machine (tests, benchmarks, development).

The ``nvidia-pytriton`` wheel in ``.venv-triton`` bundles ``tritonserver`` with the Python
backend only (no ONNX Runtime backend). This script therefore generates, from ``triton_repo``,
a Python-backend repository with the SAME model names, versions, tensor names, dims, data types,
batch sizes and dynamic batching; each version's ``model.py`` runs its ``model.onnx`` with
ONNX Runtime. On a real Triton deployment ``triton_repo/`` is mounted as is.

    .venv/bin/python scripts/triton_local.py --workdir /tmp/triton --grpc-port 8001 --http-port 8000

Hot reload: the server polls the generated repository (``--poll-seconds``); run
``scripts/triton_local.py --generate-only`` after ``aiws export`` to publish the new version to it.
The twins' ``config.pbtxt`` are copies: after ``aiws model promote``/``rollback`` (which rewrites a
model's ``version_policy`` in ``triton_repo``) run ``--sync-configs``, which rewrites only the changed
configurations, atomically; the server then unloads the old version and loads the promoted one at its
next poll. (A real Triton mounting ``triton_repo`` itself sees the change without this step.)
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.runtime.model_config import message_to_text, parse_message  # noqa: E402
from models.runtime.repository import MODEL_FILENAME, ModelRepository  # noqa: E402

VENV_TRITON = ROOT / ".venv-triton"
MODEL_PY = Path(__file__).resolve().parent / "triton_model.py"


def python_backend_config(text: str, origin: str) -> str:
    """The ``config.pbtxt`` of the Python-backend twin: platform removed, backend python, CPU instances."""
    from tritonclient.grpc import model_config_pb2 as pb

    msg = parse_message(text, origin)
    msg.platform = ""
    msg.backend = "python"
    for group in msg.instance_group:
        group.kind = pb.ModelInstanceGroup.KIND_CPU
        group.ClearField("gpus")
    return message_to_text(msg)


def generate_python_repository(source: Path, target: Path) -> list[str]:
    """Write the Python-backend twin of *source* into *target* (replaced); returns the model names."""
    repo = ModelRepository(source)
    if target.exists():
        shutil.rmtree(target)
    names = repo.models()
    for name in names:
        (target / name).mkdir(parents=True)
        text = repo.config_path(name).read_text(encoding="utf-8")
        (target / name / "config.pbtxt").write_text(python_backend_config(text, str(repo.config_path(name))))
        for version in repo.versions(name):
            folder = target / name / str(version)
            folder.mkdir()
            shutil.copyfile(repo.model_path(name, version), folder / MODEL_FILENAME)
            shutil.copyfile(MODEL_PY, folder / "model.py")
    return names


def sync_configs(source: Path, target: Path) -> list[str]:
    """Rewrite the twins' ``config.pbtxt`` in *target* where *source*'s changed (e.g. a promoted version's
    ``version_policy``), each atomically (temporary file, then rename); the server reloads those models at
    its next poll. Version folders are left as they are (:func:`generate_python_repository` adds new ones).
    Returns the names of the models whose configuration changed."""
    repo = ModelRepository(source)
    changed = []
    for name in repo.models():
        twin = target / name / "config.pbtxt"
        if not twin.parent.is_dir():
            continue
        text = python_backend_config(repo.config_path(name).read_text(encoding="utf-8"), str(repo.config_path(name)))
        if twin.is_file() and twin.read_text(encoding="utf-8") == text:
            continue
        tmp = twin.with_name(".config.pbtxt.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, twin)
        changed.append(name)
    return changed


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"{venv}: no site-packages (run 'make setup' to build .venv-triton)")
    return found[0]


def prepare_server(venv: Path, workdir: Path) -> Path:
    """Copy pytriton's tritonserver into *workdir* with the Python 3.11 backend stub in place."""
    dist = _site_packages(venv) / "pytriton" / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise FileNotFoundError(f"{dist}: no tritonserver (nvidia-pytriton not installed in {venv})")
    server = workdir / "tritonserver"
    if not server.exists():
        shutil.copytree(dist, server, ignore=shutil.ignore_patterns("python_backend_stubs"))
        stub = dist / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
        shutil.copy2(stub, server / "backends" / "python" / "triton_python_backend_stub")
    return server


def server_env(venv: Path) -> dict[str, str]:
    """Environment for tritonserver: libpython and the bundled libraries on LD_LIBRARY_PATH, venv first on PATH."""
    site = _site_packages(venv)
    libdirs = [str(sysconfig.get_config_var("LIBDIR")), str(site.parent.parent.parent / "lib"),
               str(site / "nvidia_pytriton.libs")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([*libdirs, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(site)
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a __pycache__ in a version folder would look like a change to the poller
    return env


@dataclass
class ServerOptions:
    workdir: Path
    grpc_port: int = 8001
    http_port: int = 8000
    repository: Path = ROOT / "triton_repo"
    venv: Path = VENV_TRITON
    poll_seconds: int = 2
    extra: list[str] = field(default_factory=list)
    #: "poll" (the server follows the repository) or "explicit" (every model loaded at start, then only on
    #: request: ``TritonRuntime.load_model``, as ``aiws model promote`` does with ``runtime = "triton"``).
    model_control: str = "poll"


def server_command(options: ServerOptions, server: Path, model_store: Path) -> list[str]:
    return [str(server / "bin" / "tritonserver"), f"--model-repository={model_store}",
            f"--backend-directory={server / 'backends'}", f"--cache-directory={server / 'caches'}",
            f"--grpc-port={options.grpc_port}", f"--http-port={options.http_port}", "--allow-metrics=false",
            *(["--model-control-mode=explicit", "--load-model=*"] if options.model_control == "explicit" else
              ["--model-control-mode=poll", f"--repository-poll-secs={options.poll_seconds}"]),
            "--strict-readiness=true", "--exit-on-error=false", "--log-verbose=0", *options.extra]


def start_server(options: ServerOptions, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Generate the Python-backend repository and start tritonserver (not waiting for readiness)."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    model_store = options.workdir / "models"
    generate_python_repository(options.repository, model_store)
    server = prepare_server(options.venv, options.workdir)
    log = open(log_path or options.workdir / "tritonserver.log", "ab")
    return subprocess.Popen(server_command(options, server, model_store), stdout=log, stderr=subprocess.STDOUT,
                            env=server_env(options.venv), start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--repository", type=Path, default=ROOT / "triton_repo")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--poll-seconds", type=int, default=2)
    parser.add_argument("--generate-only", action="store_true", help="only (re)generate the Python-backend repository")
    parser.add_argument("--sync-configs", action="store_true",
                        help="only copy changed config.pbtxt files (a promoted version) to the running server's twins")
    args = parser.parse_args(argv)
    if args.sync_configs:
        changed = sync_configs(args.repository, args.workdir / "models")
        print(f"configuration changed: {', '.join(changed) or 'none'}")
        return 0
    if args.generate_only:
        names = generate_python_repository(args.repository, args.workdir / "models")
        print(f"generated {', '.join(names)} in {args.workdir / 'models'}")
        return 0
    options = ServerOptions(args.workdir, args.grpc_port, args.http_port, args.repository, poll_seconds=args.poll_seconds)
    proc = start_server(options, log_path=None)
    print(f"tritonserver pid {proc.pid}: gRPC {args.grpc_port}, HTTP {args.http_port}; log {args.workdir}/tritonserver.log")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
