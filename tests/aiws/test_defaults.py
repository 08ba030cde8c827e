"""The shipped defaults (aiws/defaults.toml): what ``aiws serve`` (``make serve``) runs on without --config,
accepting loopback peers, routing each modality to its pipeline and sending results to one destination."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aiws.cli import DEFAULT_CONFIG, main
from aiws.config import load_config
from aiws.pipelines import check_routes
from aiws.routing import Route, route_study
from peers import DCMTK_ENV, free_port, have_tool, wait_for


def _routes() -> list[Route]:
    return [Route.of(r) for r in load_config(DEFAULT_CONFIG, {}).routes]


def test_defaults_route_each_modality_to_its_pipeline_and_back_to_one_destination() -> None:
    config = load_config(DEFAULT_CONFIG, {})
    check_routes(config)
    assert [d.name for d in config.dicom.destinations] == ["pacs"]
    assert {r.send_to for r in config.routes} == {("pacs",)}
    assert config.dicom.require_known_source and config.dicom.sources
    assert {s.host for s in config.dicom.sources} == {"127.0.0.1"}  # loopback only, every source with its host
    series = {
        "chest": {"Modality": "CT", "BodyPartExamined": "CHEST", "SliceThickness": "1.25"},
        "chest-5mm": {"Modality": "CT", "BodyPartExamined": "CHEST", "SliceThickness": "5.0"},
        "calcium": {"Modality": "CT", "BodyPartExamined": "HEART", "SliceThickness": "3.0"},
        "cine": {"Modality": "MR", "BodyPartExamined": "HEART"},
        "brain": {"Modality": "MR", "BodyPartExamined": "BRAIN"},
        "mammo": {"Modality": "MG", "BodyPartExamined": "BREAST"},
    }
    jobs = {job.series_uids: job.pipeline for job in route_study(_routes(), series)}
    assert jobs == {("chest",): "lung_nodules", ("calcium",): "coronary_ct", ("cine",): "cardiac_mri",
                    ("mammo",): "mammography"}


def test_no_config_means_the_defaults_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["ae", "list"]) == 0
    out = capsys.readouterr().out
    for source in ("ORTHANC", "ECHOSCU", "STORESCU"):
        assert any(line.split()[:3] == ["source", source, "127.0.0.1"] for line in out.splitlines()), out
    assert "destination  pacs             ORTHANC@127.0.0.1:4242" in out
    assert (tmp_path / "var" / "aiws.db").exists()  # data_dir "./var" of the defaults, relative to the cwd


@pytest.mark.network
@pytest.mark.skipif(not have_tool("echoscu"), reason="dcmtk echoscu")
def test_serve_without_config_answers_an_echo_from_loopback(tmp_path: Path) -> None:
    dicom_port, http_port = free_port(), free_port()
    env = {**DCMTK_ENV, "AIWS_DICOM_PORT": str(dicom_port), "AIWS_HTTP_PORT": str(http_port),
           "AIWS_ADMIN_TOKEN": "test-token", "AIWS_WORKERS": "0"}
    env.pop("AIWS_DATA_DIR", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "aiws.cli", "serve"], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, env=env)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"aiws serve exited: {log.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=90, what="aiws serve on the defaults")
        # The README's first step, with echoscu's own calling AE title (ECHOSCU): accepted.
        echo = subprocess.run(["echoscu", "-aec", "AIWS", "127.0.0.1", str(dicom_port)], capture_output=True,
                              text=True, env=DCMTK_ENV, timeout=60)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        stranger = subprocess.run(["echoscu", "-aet", "STRANGER", "-aec", "AIWS", "127.0.0.1", str(dicom_port)],
                                  capture_output=True, text=True, env=DCMTK_ENV, timeout=60)
        assert stranger.returncode != 0 and "Calling AE Title Not Recognized" in stranger.stdout + stranger.stderr
        text = log.read_text()
        assert (f"active: AE AIWS on port {dicom_port}; sources ORTHANC@127.0.0.1, ECHOSCU@127.0.0.1, "
                "STORESCU@127.0.0.1; routes lung_nodules [") in text
        for pipeline in ("coronary_ct", "cardiac_mri", "mammography"):
            assert f"; {pipeline} [" in text
        assert "destinations pacs=ORTHANC@127.0.0.1:4242" in text
        assert (tmp_path / "var" / "aiws.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_startup_line_names_an_open_door_plainly() -> None:
    from aiws.cli_admin import describe_active

    open_door = {"ae_title": "AIWS", "require_known_source": False, "sources": [], "destinations": []}
    assert describe_active(open_door, (), 104) == ("active: AE AIWS on port 104; sources any calling AE title; "
                                                   "routes none; destinations none")
    trusting = {**open_door, "require_known_source": True,
                "sources": [{"ae_title": "CT1", "host": None, "any_host": True}]}
    assert "sources CT1@any host;" in describe_active(trusting, (), 104)
