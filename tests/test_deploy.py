"""The deployment files: Dockerfile (hadolint, targets, what the serving image holds), ``.dockerignore``,
``deploy/compose.yaml`` (the checks of ``docker compose config``: interpolation and the Compose
Specification schema, plus that its parts agree with ``deploy/aiws.toml``), the container health
check against a running ``aiws serve``, and the Orthanc routing script in a real Orthanc.

No Docker engine runs on the test machines: the images are not built here (docs/deployment.md).
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import tomllib
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aiws.config import load_config
from aiws.pipelines import check_routes

# deploy/ is a folder of the repository, not an installed package: importable once peers put the root on sys.path.
from deploy.compose_check import compose_problems, load_compose, schema_errors
from deploy.compose_check import main as compose_check_main
from factories import make_ct_series
from peers import AiwsProcess, free_port, have_tool, storescu, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
#: What only training imports; the serving images do not hold them (deploy/requirements-train.txt).
TRAINING_ONLY = ("torch", "monai", "onnxscript", "nibabel", "sklearn", "tqdm", "training", "SimpleITK")
#: Serving-package modules that exist for training only (they import a TRAINING_ONLY package at the top).
TRAINING_ONLY_MODULES = {"imaging.nifti"}
SERVING_PACKAGES = ("aiws", "pacs_bridge", "imaging", "models", "plugins")
#: Python source that makes importing a TRAINING_ONLY package fail (the serving image does not have them).
BLOCKER = f"""
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAINING_ONLY!r}:
            raise ImportError(name + " is not in the serving image")
sys.meta_path.insert(0, _Block())
"""


# ---------------------------------------------------------------- Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _stages() -> dict[str, dict[str, Any]]:
    """Stage name -> {"from": base, "ins": [(INSTRUCTION, args)]}, in file order."""
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for word, args in _instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, flags=re.IGNORECASE)
            assert m, f"every stage is named: FROM {args}"
            current = stages[m.group(2)] = {"from": m.group(1), "ins": []}
        elif current is not None:
            current["ins"].append((word, args))
    return stages


def _lineage(stages: dict[str, dict[str, Any]], name: str) -> list[str]:
    chain = [name]
    while stages[chain[-1]]["from"] in stages:
        chain.append(stages[chain[-1]]["from"])
    return chain


def test_hadolint_reports_nothing_above_info() -> None:
    out = subprocess.run([str(BIN / "hadolint"), "--format", "json", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    findings = json.loads(out.stdout or "[]")
    assert [f for f in findings if f["level"] in ("error", "warning")] == [], out.stdout


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\nCMD python x.py\n")
    out = subprocess.run([str(BIN / "hadolint"), "--format", "json", str(bad)], capture_output=True, text=True,
                         timeout=60)
    codes = {f["code"] for f in json.loads(out.stdout)}
    assert {"DL3007", "DL3008", "DL3009", "DL3015", "DL3025", "DL3002"} <= codes


def test_dockerfile_targets_users_healthcheck_and_what_serving_holds() -> None:
    stages = _stages()
    assert list(stages)[-1] == "cpu", "a plain `docker build` must give the CPU serving image"
    assert {"cpu", "gpu", "train"} <= set(stages)
    assert stages["gpu"]["from"].startswith("nvidia/cuda:") and "-runtime-" in stages["gpu"]["from"]
    for base in (s["from"] for s in stages.values() if s["from"] not in stages):
        assert re.search(r":[0-9][^:]*$", base) and "latest" not in base, f"unpinned base image {base}"
    for target in ("cpu", "gpu"):
        ins = [i for name in reversed(_lineage(stages, target)) for i in stages[name]["ins"]]
        text = " ".join(args for _, args in ins)
        for banned in ("torch", "monai", "requirements-train", "dcmtk", "dicom3tools"):
            assert banned not in text, f"{target} image installs {banned}"
        assert [a for w, a in ins if w == "USER"][-1] == "10001:10001"
        health = [a for w, a in ins if w == "HEALTHCHECK"]
        exec_form = json.loads(health[-1][health[-1].index("CMD") + 3:])
        assert exec_form == ["python", "/opt/aiws/healthcheck.py"]
        assert json.loads([a for w, a in ins if w == "ENTRYPOINT"][-1]) == ["aiws"]
        assert json.loads([a for w, a in ins if w == "CMD"][-1]) == ["serve"]
    gpu = " ".join(a for _, a in stages["gpu"]["ins"])
    assert "requirements-gpu.txt" in gpu and "grep -v '^onnxruntime=='" in gpu
    train = " ".join(a for _, a in stages["train"]["ins"])
    assert _project_requirements()["torch"].specifier == Requirement(
        re.search(r"torch==\S+", train).group(0)).specifier, "train pins torch as pyproject.toml does"


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Whether the build context keeps *path* (Docker's rule: the last matching pattern wins)."""
    keep = True
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            keep = negate
    return keep


def test_dockerignore_sends_what_copy_needs_and_nothing_private() -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    sources = [src for word, args in _instructions(DOCKERFILE.read_text()) if word == "COPY" and "--from" not in args
               for src in args.split()[:-1]]
    assert sources, "the Dockerfile copies from the context"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such path"
        assert _dockerignore_allows(src, patterns), f"COPY {src} is excluded by .dockerignore"
    for private in ("var/aiws.db", ".venv/bin/python", ".git/config", "tests/conftest.py", "runs/r1/model.pt",
                    "deploy/.env", "aiws/__pycache__/cli.cpython-311.pyc"):
        assert not _dockerignore_allows(private, patterns), f"{private} would enter the build context"


# ---------------------------------------------------------------- requirements


def _requirements(path: Path) -> dict[str, Requirement]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln]
    return {canonicalize_name(r.name): r for r in reqs}


def _project_requirements() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in deps}


def test_image_requirements_are_the_project_dependencies_pinned() -> None:
    project = _project_requirements()
    serve, train = _requirements(DEPLOY / "requirements-serve.txt"), _requirements(DEPLOY / "requirements-train.txt")
    assert not set(serve) & set(train)
    assert set(serve) | set(train) == set(project), (
        "a dependency added to pyproject.toml goes into deploy/requirements-serve.txt (serving) or "
        f"-train.txt (training only); differs: {sorted(set(project) ^ (set(serve) | set(train)))}")
    for name, req in {**serve, **train}.items():
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1, f"{req}: pin it with =="
        assert project[name].specifier.contains(pins[0].version), f"{req} outside pyproject.toml's {project[name]}"
        assert req.extras == project[name].extras, f"{req}: extras differ from pyproject.toml"
    gpu = _requirements(DEPLOY / "requirements-gpu.txt")
    assert set(gpu) == {"onnxruntime-gpu", "cupy-cuda13x"}


def test_serving_modules_import_without_the_training_stack() -> None:
    """Every module of the serving packages imports, every pipeline and plugin is built, with torch & co. blocked."""
    script = BLOCKER + textwrap.dedent(f"""
        import importlib, pkgutil
        for package in {SERVING_PACKAGES!r}:
            for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
                # alembic's env.py and revisions are scripts alembic itself runs (aiws.ledger.pg.upgrade)
                if info.name not in {TRAINING_ONLY_MODULES!r} and not info.name.startswith("aiws.ledger.alembic."):
                    importlib.import_module(info.name)
        from aiws.config import load_config
        from aiws.pipelines import PIPELINES
        from imaging.backend import ArrayBackend
        from plugins.registry import BUILTINS
        config = load_config(None, {{}})
        built = [PIPELINES[name](config, ArrayBackend.select("numpy")) for name in sorted(PIPELINES)]
        plugins = [factory() for factory in BUILTINS.values()]
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TRAINING_ONLY!r})
        print(len(built), len(PIPELINES), len(plugins), len(BUILTINS), loaded)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    n_built, n_pipelines, n_plugins, n_builtins, loaded = out.stdout.split(maxsplit=4)
    assert (n_built, n_plugins, loaded.strip()) == (n_pipelines, n_builtins, "[]")
    assert int(n_pipelines) >= 5 and int(n_builtins) >= 4


# ---------------------------------------------------------------- compose


def _example_env() -> dict[str, str]:
    lines = [ln for ln in (DEPLOY / "env.example").read_text().splitlines() if "=" in ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    return load_compose(DEPLOY / "compose.yaml", _example_env() if env is None else env)


def test_compose_file_is_valid() -> None:
    doc = _compose()
    assert schema_errors(doc) == []
    assert compose_problems(doc, DEPLOY) == []
    assert set(doc["services"]) == {"aiws", "triton", "orthanc", "postgres"}
    assert doc["services"]["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert doc["services"]["triton"]["image"].endswith("-py3")
    assert doc["services"]["orthanc"]["image"].startswith("orthancteam/orthanc:")


def test_compose_checks_catch_mistakes() -> None:
    with pytest.raises(ValueError, match="ORTHANC_DB_PASSWORD"):
        _compose(env={"AIWS_ADMIN_TOKEN": "t", "ORTHANC_ADMIN_PASSWORD": "p", "AIWS_DB_PASSWORD": "d"})
    assert compose_check_main([str(DEPLOY / "compose.yaml"), "--env-file", str(DEPLOY / "env.example")]) == 0
    doc = _compose()
    doc["services"]["aiws"]["portz"] = ["8080:8080"]
    doc["services"]["postgres"]["healthcheck"]["interval"] = ["10s"]
    errors = "\n".join(schema_errors(doc))
    assert "'portz' was unexpected" in errors and "services/postgres/healthcheck/interval:" in errors
    doc = _compose()
    del doc["services"]["postgres"]["image"]
    doc["services"]["aiws"]["depends_on"]["pacs"] = {"condition": "service_started"}
    doc["services"]["aiws"]["volumes"].append("aiws-logs:/var/log/aiws")
    doc["services"]["aiws"]["build"]["target"] = "cuda"
    doc["services"]["orthanc"]["networks"]["pacs"]["ipv4_address"] = "10.0.0.1"
    assert len(compose_problems(doc, DEPLOY)) == 5


def _mount(service: dict[str, Any], source: str) -> str:
    return next(v.split(":")[1] for v in service["volumes"] if v.split(":")[0] == source)


def _orthanc_config(env: dict[str, str]) -> dict[str, Any]:
    """The orthancteam/orthanc image's rule: ORTHANC__DICOM_AET -> DicomAet (JSON values parsed); top level only."""
    config: dict[str, Any] = {}
    for name, value in env.items():
        key = name.removeprefix("ORTHANC__")
        if key == name or "__" in key:
            continue
        pascal = "".join(word.capitalize() for word in key.split("_"))
        try:
            config[pascal] = json.loads(value)
        except json.JSONDecodeError:
            config[pascal] = value
    return config


def test_compose_services_and_aiws_config_agree() -> None:
    doc = _compose()
    aiws, triton, orthanc = (doc["services"][s] for s in ("aiws", "triton", "orthanc"))
    config_path = _mount(aiws, "./aiws.toml")
    assert aiws["command"] == ["serve", "--config", config_path]
    config = load_config(DEPLOY / "aiws.toml", env={})
    check_routes(config)
    assert config.runtime.backend == "triton"
    host, port = config.runtime.triton_url.rsplit(":", 1)
    assert host == "triton" and port == "8001" and config.runtime.triton_protocol == "grpc"
    assert not any(arg.startswith("--grpc-port") for arg in triton["command"]), "Triton's gRPC port is its default"
    assert f"--model-repository={_mount(triton, '../triton_repo')}" in triton["command"]
    assert str(config.runtime.model_repository) == _mount(aiws, "../triton_repo")
    assert str(config.storage.data_dir) == _mount(aiws, "aiws-data")
    published = {p.rsplit(":", 1)[1] for p in aiws["ports"]}
    assert published == {str(config.dicom.port), str(config.http.port)}

    o = _orthanc_config(orthanc["environment"])
    [source] = config.dicom.sources
    assert (source.ae_title, source.host) == (o["DicomAet"], orthanc["networks"]["pacs"]["ipv4_address"])
    [dest] = config.dicom.destinations
    assert (dest.ae_title, dest.host, dest.port) == (o["DicomAet"], "orthanc", o["DicomPort"])
    assert o["DicomModalities"]["aiws"] == [config.dicom.ae_title, "aiws", config.dicom.port]
    [lua] = o["LuaScripts"]
    assert lua == _mount(orthanc, "./orthanc/route-to-aiws.lua")
    script = (DEPLOY / "orthanc" / "route-to-aiws.lua").read_text()
    assert "local AIWS_MODALITY = 'aiws'" in script and f"local AIWS_AET = '{config.dicom.ae_title}'" in script
    postgres = doc["services"]["postgres"]["environment"]
    assert orthanc["environment"]["ORTHANC__POSTGRESQL__PASSWORD"] == postgres["POSTGRES_PASSWORD"]


def test_compose_ledger_database_is_made_by_the_init_script() -> None:
    """The postgres service's init script makes the user and database AIWS_LEDGER_URL names; AIWS then opens its
    ledger there (tables by alembic). Run against a real PostgreSQL as the postgres image runs it."""
    from aiws.ledger import Ledger
    from tests.pg import SUPERUSER, PgServer, pg_bin, why_not_available

    doc = _compose()
    url = doc["services"]["aiws"]["environment"]["AIWS_LEDGER_URL"]
    assert url == "postgresql://aiws:change-me@postgres:5432/aiws"  # deploy/env.example interpolated
    assert _mount(doc["services"]["postgres"], "./postgres/init-aiws-ledger.sh").startswith(
        "/docker-entrypoint-initdb.d/")
    assert doc["services"]["aiws"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    if why_not_available():
        pytest.skip(why_not_available())
    server = PgServer().start()
    try:
        bin_dir = pg_bin()
        assert bin_dir is not None
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "POSTGRES_USER": SUPERUSER,
               "POSTGRES_DB": "postgres", "PGHOST": "127.0.0.1", "PGPORT": str(server.port),
               "AIWS_DB_PASSWORD": "s3cret-pass", "AIWS_DB_USER": "aiws_ledger"}  # the cluster's superuser is aiws
        run = subprocess.run(["sh", str(DEPLOY / "postgres" / "init-aiws-ledger.sh")], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        ledger = Ledger(Path("/nonexistent/aiws.db"),
                        f"postgresql://aiws_ledger:s3cret-pass@127.0.0.1:{server.port}/aiws_ledger")
        ledger.audit("test", "deploy check", {})
        assert ledger.verify_audit().ok
        ledger.close()
    finally:
        server.stop()


def test_triton_repo_configs_name_the_onnxruntime_backend() -> None:
    from models.runtime.model_config import read_model_config
    from scripts.triton_local import python_backend_config

    configs = sorted((ROOT / "triton_repo").glob("*/config.pbtxt"))
    assert len(configs) == 5
    for path in configs:
        spec = read_model_config(path)
        assert spec.platform == "onnxruntime_onnx" or spec.backend == "onnxruntime", path
        assert all((v / "model.onnx").is_file() for v in path.parent.iterdir() if v.is_dir()), path
        twin = python_backend_config(path.read_text(), str(path))
        assert 'backend: "python"' in twin and "onnxruntime_onnx" not in twin


# ---------------------------------------------------------------- running parts


def _deploy_aiws(workdir: Path, **env: str) -> AiwsProcess:
    """``aiws serve`` on deploy/aiws.toml, local ports and folders by its environment overrides (as in the image)."""
    workdir.mkdir(parents=True)
    (workdir / "site").mkdir()
    (workdir / "site" / "sitecustomize.py").write_text(BLOCKER)
    aiws = AiwsProcess(workdir, (DEPLOY / "aiws.toml").read_text(), dicom_port=free_port(), http_port=free_port())
    aiws.env = {"PYTHONPATH": str(workdir / "site"), "AIWS_DICOM_HOST": "127.0.0.1", "AIWS_HTTP_HOST": "127.0.0.1",
                "AIWS_DICOM_PORT": str(aiws.dicom_port), "AIWS_HTTP_PORT": str(aiws.http_port),
                "AIWS_DATA_DIR": str(aiws.data_dir), "AIWS_MODEL_REPOSITORY": str(ROOT / "triton_repo"),
                "AIWS_TRITON_URL": f"127.0.0.1:{free_port()}", **env}
    return aiws


@pytest.mark.network
def test_healthcheck_script_against_the_deploy_config(tmp_path: Path) -> None:
    aiws = _deploy_aiws(tmp_path / "aiws")
    probe = [sys.executable, str(DEPLOY / "healthcheck.py")]
    probe_env = {**os.environ, "AIWS_HTTP_PORT": str(aiws.http_port)}
    try:
        aiws.start()
        health = httpx.get(f"{aiws.url}/health", timeout=10).json()
        assert health["checks"]["triton_up"] is False  # nothing listens on the Triton URL: degraded, still 200
        assert subprocess.run(probe, env=probe_env, capture_output=True, timeout=30).returncode == 0
        assert "not in the serving image" not in aiws.log()
        _check_online_backups(aiws.data_dir / "aiws.db", tmp_path / "backup")
    finally:
        aiws.stop()
    down = subprocess.run(probe, env=probe_env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "URLError" in down.stderr


def test_measure_study_reports_one_study(tmp_path: Path) -> None:
    make_ct_series(tmp_path / "study", n_slices=3)
    out = subprocess.run([sys.executable, str(DEPLOY / "measure_study.py"), "echo_summary", str(tmp_path / "study")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.fullmatch(r"echo_summary: 3 files, ([0-9.]+) MB in, ([0-9.]+) MB out, [0-9.]+ s, peak RSS (\d+) MiB\n",
                     out.stdout)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0 and int(m.group(3)) > 50, out.stdout


#: docs/deployment.md, "Backups": the ledger copied while the service runs (the images have no sqlite3 CLI).
PY_BACKUP = ("import sqlite3, sys; s = sqlite3.connect(sys.argv[1]); d = sqlite3.connect(sys.argv[2]); "
             "s.backup(d); d.close(); s.close()")


def _check_online_backups(db: Path, folder: Path) -> None:
    """The two backup commands of the guide, run against the live ledger: complete, consistent copies."""
    folder.mkdir()
    copies = [folder / "python.db"]
    subprocess.run([sys.executable, "-c", PY_BACKUP, str(db), str(copies[0])], check=True, timeout=60)
    if have_tool("sqlite3"):
        copies.append(folder / "cli.db")
        subprocess.run(["sqlite3", str(db), f".backup '{copies[1]}'"], check=True, timeout=60)
    with closing(sqlite3.connect(db)) as con:
        tables = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    for copy in copies:
        with closing(sqlite3.connect(copy)) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall() == tables
            assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is not None


ROUND_TRIP = """
[dicom]
ae_title = "AIWS"
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = ORTHANC_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "echo_summary"
send_to = ["pacs"]
[routes.match]
Modality = "CT"
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@pytest.mark.network
@pytest.mark.skipif(not have_tool("Orthanc") or not have_tool("storescu"), reason="needs Orthanc and dcmtk")
def test_orthanc_routes_new_images_to_aiws_and_not_its_results(tmp_path: Path) -> None:
    """compose.yaml's Orthanc settings and Lua script in a real Orthanc: a modality's study reaches AIWS, the
    result AIWS sends back is stored in Orthanc and NOT forwarded to AIWS again (no reprocessing loop)."""
    orthanc_env = _compose()["services"]["orthanc"]["environment"]
    config = _orthanc_config(orthanc_env)
    aiws_port, dicom_port, http_port = free_port(), free_port(), free_port()
    config.update(DicomPort=dicom_port, HttpPort=http_port, StorageDirectory=str(tmp_path / "orthanc"),
                  IndexDirectory=str(tmp_path / "orthanc"), RemoteAccessAllowed=False, StableAge=1,
                  LuaScripts=[str(DEPLOY / "orthanc" / "route-to-aiws.lua")])
    config["DicomModalities"]["aiws"][1:] = ["127.0.0.1", aiws_port]
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    auth = ("admin", _example_env()["ORTHANC_ADMIN_PASSWORD"])
    aiws = AiwsProcess(tmp_path / "aiws", ROUND_TRIP.replace("ORTHANC_PORT", str(dicom_port)), dicom_port=aiws_port)
    (tmp_path / "aiws").mkdir()
    with open(tmp_path / "orthanc.log", "wb") as log:
        orthanc = subprocess.Popen(["Orthanc", str(tmp_path / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: orthanc.poll() is not None or _get(http_port, "/system", auth) is not None,
                 timeout=30, what="Orthanc")
        assert orthanc.poll() is None, (tmp_path / "orthanc.log").read_text()[-2000:]
        aiws.start()
        first = _send_study(tmp_path / "a", 4, dicom_port)
        wait_for(lambda: len(_get(http_port, f"/studies/{_orthanc_id(http_port, first, auth)}/instances", auth)
                             or []) == 5, timeout=120, what="the AIWS result stored in Orthanc")
        barrier = _send_study(tmp_path / "b", 2, dicom_port)
        wait_for(lambda: [j for j in _aiws_study(aiws, barrier).get("jobs", []) if j["state"] == "done"],
                 timeout=120, what="the second study processed")
        study = _aiws_study(aiws, first)
        assert study["n_instances"] == 4, "AIWS's own result was routed back to it"
        assert len(study["jobs"]) == 1
    finally:
        aiws.stop()
        orthanc.terminate()
        orthanc.wait(30)


def _send_study(folder: Path, n: int, port: int) -> str:
    files = make_ct_series(folder, n_slices=n)
    done = storescu("127.0.0.1", port, "ORTHANC", "CT_SCANNER", files)
    assert done.returncode == 0, done.stderr
    from pydicom import dcmread
    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _get(port: int, path: str, auth: tuple[str, str]) -> Any:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", auth=auth, timeout=5)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _orthanc_id(port: int, study_uid: str, auth: tuple[str, str]) -> str:
    r = httpx.post(f"http://127.0.0.1:{port}/tools/lookup", content=study_uid.encode(), auth=auth, timeout=10)
    return next((f["ID"] for f in r.json() if f["Type"] == "Study"), "none")


def _aiws_study(aiws: AiwsProcess, study_uid: str) -> dict[str, Any]:
    r = httpx.get(f"{aiws.url}/api/studies/{study_uid}", headers={"Authorization": "Bearer test-token"}, timeout=30)
    return r.json() if r.status_code == 200 else {}
