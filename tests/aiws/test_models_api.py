"""Models API of a real ``aiws serve``: versions per pipeline, cards, promote and roll back (roles, audit,
refusals). The service runs on a COPY of triton_repo (AIWS_MODEL_REPOSITORY); the shipped one is not touched."""
from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aiws.api.accounts import create_account, issue_token
from aiws.ledger import Ledger
from aiws.model_versions import PIPELINE_MODELS
from models.runtime import ModelRepository
from peers import AiwsProcess

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "models" / "runtime"))

from tiny_onnx import pointwise_onnx  # noqa: E402

pytestmark = pytest.mark.network

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""
ROLES = ("admin", "radiologist", "ml-engineer", "clinician")


class Service:
    def __init__(self, proc: AiwsProcess, repo: Path, tokens: dict[str, str]) -> None:
        self.proc, self.repo, self.tokens = proc, repo, tokens

    def call(self, method: str, path: str, role: str | None, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.request(method, f"{self.proc.url}{path}", headers=headers, timeout=60,  # type: ignore[arg-type]
                             **kw)

    def audit(self, action: str) -> list[dict[str, object]]:
        ledger = Ledger(self.proc.data_dir / "aiws.db")
        try:
            return list(reversed(ledger.list_audit(limit=100, action_prefix=action)))
        finally:
            ledger.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("models_api")
    repo = tmp / "triton_repo"
    shutil.copytree(ROOT / "triton_repo", repo)
    (repo / "lung_nodules" / "7").mkdir()
    pointwise_onnx(repo / "lung_nodules" / "7" / "model.onnx")  # tensors x -> y: not lung_nodules' ct -> nodule_prob
    proc = AiwsProcess(tmp, CONFIG, env={"AIWS_WORKERS": "0", "AIWS_MODEL_REPOSITORY": str(repo)}).start()
    ledger = Ledger(proc.data_dir / "aiws.db")
    tokens = {}
    for role in ROLES:
        create_account(ledger, role, role, "console-pass-1234", actor="test")
        tokens[role] = issue_token(ledger, role, label="test")
    ledger.close()
    yield Service(proc, repo, tokens)
    proc.stop()


def _models(service: Service, role: str = "radiologist") -> dict[str, dict[str, object]]:
    answer = service.call("GET", "/api/models", role)
    assert answer.status_code == 200, answer.text
    return {m["name"]: m | {"pipeline": p["pipeline"]} for p in answer.json() for m in p["models"]}


def test_list_per_pipeline_with_versions_cards_and_active(service: Service) -> None:
    answer = service.call("GET", "/api/models", "ml-engineer")
    assert answer.status_code == 200
    pipelines = [p["pipeline"] for p in answer.json()]
    assert pipelines[:4] == ["lung_nodules", "mammography", "coronary_ct", "cardiac_mri"]
    models = _models(service)
    lung = models["lung_nodules"]
    assert lung["pipelines"] == ["lung_nodules"] and lung["policy"] == "latest"
    assert lung["active"] == 7  # 'latest' would serve the mismatched version: why versions are pinned
    versions = {v["version"]: v for v in lung["versions"]}  # type: ignore[union-attr]
    assert sorted(versions) == [1, 2, 3, 4, 5, 6, 7]
    assert versions[6]["summary"].startswith("3D U-Net (MONAI) nodule segmentation")
    assert versions[6]["has_card"] and not versions[7]["has_card"]
    assert models["lung_nodule_classifier"]["pipeline"] == "lung_nodules"
    assert models["mammo_detector"]["active"] == 2  # version 2: trained on both phantom families


def test_pipeline_models_are_the_ones_the_pipelines_run() -> None:
    from aiws.pipelines import PIPELINES
    from models.cardiac_mri.network import MODEL_NAME as CARDIAC
    from models.coronary_ct.network import MODEL_NAME as CORONARY
    from models.lung_nodules.classifier import MODEL_NAME as CLASSIFIER
    from models.lung_nodules.inference import MODEL_NAME as LUNG
    from models.mammography.pipeline import MODEL as MAMMO

    assert set(PIPELINE_MODELS) == set(PIPELINES)
    assert PIPELINE_MODELS["lung_nodules"] == (LUNG, CLASSIFIER)
    assert (PIPELINE_MODELS["mammography"], PIPELINE_MODELS["coronary_ct"], PIPELINE_MODELS["cardiac_mri"]) == \
        ((MAMMO,), (CORONARY,), (CARDIAC,))
    shipped = ModelRepository(ROOT / "triton_repo").models()
    assert {m for names in PIPELINE_MODELS.values() for m in names} == set(shipped)


def test_card_of_a_version(service: Service) -> None:
    answer = service.call("GET", "/api/models/lung_nodules/6/card", "radiologist")
    assert answer.status_code == 200
    assert answer.text.startswith("# Model card: lung_nodules version 6")
    assert service.call("GET", "/api/models/lung_nodules/99/card", "radiologist").status_code == 404
    assert service.call("GET", "/api/models/lung_nodules/7/card", "radiologist").status_code == 404  # no card


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/api/models", ("admin", "radiologist", "ml-engineer")),
    ("GET", "/api/models/mammo_detector/1/card", ("admin", "radiologist", "ml-engineer")),
    ("POST", "/api/models/mammo_detector/promote", ("admin", "ml-engineer")),
    ("POST", "/api/models/mammo_detector/rollback", ("admin", "ml-engineer")),
])
def test_roles(service: Service, method: str, path: str, allowed: tuple[str, ...]) -> None:
    assert service.call(method, path, None, json={"version": 1}).status_code == 401
    for role in ROLES:
        status = service.call(method, path, role, json={"version": 1}).status_code
        if role in allowed:
            assert status in (200, 409), (role, status)  # 409: mammo_detector has nothing to roll back to
        else:
            assert status == 403, (role, status)


def test_promote_then_roll_back_audited_and_followed(service: Service) -> None:
    shipped = (ROOT / "triton_repo" / "lung_nodules" / "config.pbtxt").read_bytes()
    answer = service.call("POST", "/api/models/lung_nodules/promote", "ml-engineer", json={"version": 5})
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()[k] for k in ("old_version", "new_version", "kind")} == \
        {"old_version": 7, "new_version": 5, "kind": "promote"}
    repo = ModelRepository(service.repo)
    assert repo.spec("lung_nodules").version_policy.versions == (5,)
    assert repo.resolve_version("lung_nodules") == 5  # what the next job's runtime (and its SR) uses
    assert _models(service)["lung_nodules"]["active"] == 5

    assert service.call("POST", "/api/models/lung_nodules/promote", "admin", json={"version": 6}).status_code == 200
    back = service.call("POST", "/api/models/lung_nodules/rollback", "ml-engineer")
    assert back.status_code == 200, back.text
    assert (back.json()["old_version"], back.json()["new_version"]) == (6, 5)
    # before the first promotion 'latest' served version 7, whose ONNX does not fit: refused, 5 stays
    refused = service.call("POST", "/api/models/lung_nodules/rollback", "ml-engineer")
    assert refused.status_code == 422 and "does not match the ONNX file" in refused.json()["detail"]
    assert repo.resolve_version("lung_nodules") == 5

    rows = [(r["actor"], r["action"], r["detail"]["old_version"], r["detail"]["new_version"])  # type: ignore[index]
            for r in service.audit("model ") if r["detail"]["model"] == "lung_nodules"]  # type: ignore[index]
    assert rows == [("user:ml-engineer", "model promoted", 7, 5), ("user:admin", "model promoted", 5, 6),
                    ("user:ml-engineer", "model rolled back", 6, 5)]
    assert (ROOT / "triton_repo" / "lung_nodules" / "config.pbtxt").read_bytes() == shipped


def test_refuses_missing_and_mismatched_versions(service: Service) -> None:
    before = (service.repo / "lung_nodules" / "config.pbtxt").read_bytes()
    missing = service.call("POST", "/api/models/lung_nodules/promote", "ml-engineer", json={"version": 99})
    assert missing.status_code == 404 and "version 99 is not in the repository" in missing.json()["detail"]
    unknown = service.call("POST", "/api/models/nosuch/promote", "ml-engineer", json={"version": 1})
    assert unknown.status_code == 404
    mismatched = service.call("POST", "/api/models/lung_nodules/promote", "ml-engineer", json={"version": 7})
    assert mismatched.status_code == 422
    assert "does not match the ONNX file" in mismatched.json()["detail"]
    assert service.call("POST", "/api/models/lung_nodules/promote", "ml-engineer",
                        json={"version": 0}).status_code == 422
    assert (service.repo / "lung_nodules" / "config.pbtxt").read_bytes() == before
    nothing = service.call("POST", "/api/models/cardiac_cine_segmenter/rollback", "ml-engineer")
    assert nothing.status_code == 409 and "no earlier active version" in nothing.json()["detail"]


def test_cli_list_promote_rollback(tmp_path: Path) -> None:
    import os
    import subprocess

    repo = tmp_path / "triton_repo"
    shutil.copytree(ROOT / "triton_repo", repo)
    env = {**os.environ, "AIWS_MODEL_REPOSITORY": str(repo), "AIWS_DATA_DIR": str(tmp_path / "var")}

    def aiws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "aiws"), "model", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    listed = aiws("list")
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout + listed.stderr
    assert "lung_nodules: active 6 (policy latest); versions 6* 5 4 3 2 1" in out
    promoted = aiws("promote", "lung_nodules", "3")
    assert promoted.returncode == 0 and "lung_nodules: active version 6 -> 3" in promoted.stdout + promoted.stderr
    refused = aiws("promote", "lung_nodules", "99")
    assert refused.returncode == 1 and "version 99 is not in the repository" in refused.stdout + refused.stderr
    assert "active 3 (policy specific, rollback to 6)" in "".join(aiws("list").stdout)
    back = aiws("rollback", "lung_nodules")
    assert back.returncode == 0 and "active version 3 -> 6" in back.stdout + back.stderr
    assert ModelRepository(repo).resolve_version("lung_nodules") == 6
    ledger = Ledger(tmp_path / "var" / "aiws.db")
    rows = [(r["action"], r["actor"].split(":")[0]) for r in ledger.list_audit(action_prefix="model ")]
    ledger.close()
    assert rows == [("model rolled back", "cli"), ("model promoted", "cli")]


@pytest.mark.slow
def test_promote_with_runtime_triton_asks_the_server_to_load(tmp_path: Path) -> None:
    """runtime = "triton", Triton in explicit model-control mode sharing the service's repository: the API's
    promotion loads the version on the server at once, and the audit row says so."""
    import os
    import signal

    from models.runtime.promote import active_version
    from peers import free_port, wait_for
    from scripts.triton_local import ServerOptions, start_server
    from tiny_onnx import conv_onnx, make_repository
    from triton_server import TritonServer, triton_available

    if not triton_available():
        pytest.skip("no .venv-triton with nvidia-pytriton (run 'make setup')")
    source = make_repository(tmp_path / "source")
    (source / "conv" / "2").mkdir()
    conv_onnx(source / "conv" / "2" / "model.onnx", seed=2)
    options = ServerOptions(tmp_path / "triton", free_port(), free_port(), source, model_control="explicit")
    triton = start_server(options)
    shared = options.workdir / "models"
    server = TritonServer(options.workdir, source, options.grpc_port, options.http_port, triton)
    service = None
    try:
        wait_for(lambda: server._ready() and server.model_ready("conv", 2), timeout=120, interval=0.5,
                 what="tritonserver with conv 2")
        env = {"AIWS_WORKERS": "0", "AIWS_MODEL_REPOSITORY": str(shared), "AIWS_RUNTIME_BACKEND": "triton",
               "AIWS_TRITON_URL": f"127.0.0.1:{options.grpc_port}"}
        service = AiwsProcess(tmp_path / "svc", CONFIG, env=env)
        (tmp_path / "svc").mkdir()
        ledger = Ledger(service.data_dir / "aiws.db")
        create_account(ledger, "ml", "ml-engineer", "console-pass-1234", actor="test")
        token = issue_token(ledger, "ml", label="test")
        ledger.close()
        service.start()
        answer = httpx.post(f"{service.url}/api/models/conv/promote", json={"version": 1}, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["old_version"], answer.json()["new_version"], answer.json()["triton"]) == (2, 1, "loaded")
        assert server.model_ready("conv", 1) and not server.model_ready("conv", 2)
        assert active_version(ModelRepository(shared), "conv") == 1
        ledger = Ledger(service.data_dir / "aiws.db")
        row = ledger.list_audit(limit=1, action_prefix="model promoted")[0]
        ledger.close()
        assert row["detail"] == {"model": "conv", "old_version": 2, "new_version": 1, "runtime": "triton",
                                 "triton": "loaded"}
    finally:
        if service is not None:
            service.stop()
        os.killpg(triton.pid, signal.SIGTERM)
        triton.wait(timeout=30)


def test_concurrent_promotions_record_a_consistent_history(tmp_path: Path) -> None:
    """Promotions from several threads (API requests, a CLI at once): each audit row's old version is the
    previous row's new version, and the last one is what config.pbtxt says."""
    from concurrent.futures import ThreadPoolExecutor

    from aiws import model_versions
    from aiws.config import config_from_mapping

    repo = tmp_path / "triton_repo"
    shutil.copytree(ROOT / "triton_repo" / "lung_nodules", repo / "lung_nodules")
    config = config_from_mapping({"runtime": {"model_repository": str(repo)},
                                  "storage": {"data_dir": str(tmp_path / "var")}})
    ledger = Ledger(tmp_path / "var" / "aiws.db")
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda v: model_versions.promote(config, ledger, "test", "lung_nodules", v),
                      [1, 2, 3, 4, 5, 6] * 3))
    history = model_versions.history(ledger, "lung_nodules")
    assert len(history) == 18
    assert history[0][1] == 6 and all(history[i][1] == history[i - 1][2] for i in range(1, 18))
    assert ModelRepository(repo).resolve_version("lung_nodules") == history[-1][2]
    ledger.close()
