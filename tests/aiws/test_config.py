"""Configuration: defaults, environment overrides, and errors that name the bad key."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from aiws.config import Config, load_config
from aiws.errors import ConfigError
from aiws.pipelines import check_routes

EXAMPLE = """
[dicom]
ae_title = "AIWS"
host = "0.0.0.0"
port = 11112
require_known_source = true
[[dicom.sources]]
ae_title = "ORTHANC"
host = "127.0.0.1"
[[dicom.destinations]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242
[study]
quiet_seconds = 30
[[routes]]
pipeline = "echo_summary"
send_to = ["pacs"]
[routes.match]
Modality = "CT"
SeriesDescription = "(?i)calcium|cascore"
SliceThickness = [2.0, 3.5]
[http]
host = "127.0.0.1"
port = 8080
[runtime]
backend = "onnxruntime"
triton_url = "127.0.0.1:8001"
[storage]
data_dir = "./var"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aiws.toml"
    path.write_text(text)
    return path


def test_embedded_defaults() -> None:
    cfg = load_config(None, {})
    assert (cfg.dicom.ae_title, cfg.dicom.port, cfg.http.host, cfg.http.port) == ("AIWS", 11112, "127.0.0.1", 8080)
    assert cfg.storage.data_dir == Path("./var") and cfg.runtime.backend == "onnxruntime"


def test_example_file_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, EXAMPLE), {})
    assert cfg.routes[0].rules().matches({"Modality": "CT", "SeriesDescription": "CaScore 3mm",
                                          "SliceThickness": "3.0"})
    assert not cfg.routes[0].rules().matches({"Modality": "CT", "SeriesDescription": "CaScore",
                                              "SliceThickness": "1.0"})
    check_routes(cfg)


def test_env_overrides(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, EXAMPLE), {"AIWS_DICOM_PORT": "1104", "AIWS_DATA_DIR": "/srv/aiws",
                                                   "AIWS_RUNTIME_BACKEND": "triton",
                                                   "AIWS_MODEL_REPOSITORY": "/opt/models"})
    assert (cfg.dicom.port, cfg.storage.data_dir, cfg.runtime.backend) == (1104, Path("/srv/aiws"), "triton")
    assert cfg.runtime.model_repository == Path("/opt/models")


@pytest.mark.parametrize("text,named", [
    ("[dicom]\nportt = 1\n", "dicom.portt: unknown key"),
    ("[dicom]\nport = 'x'\n", "dicom.port"),
    ("[dicom]\nae_title = 'AN_AE_TITLE_TOO_LONG'\n", "dicom.ae_title"),
    ("[[routes]]\npipeline='echo_summary'\n[routes.match]\nModalty='CT'\n", "'Modalty' is not a DICOM keyword"),
    ("[[routes]]\npipeline='echo_summary'\n[routes.match]\nModality='(CT'\n", "invalid regular expression"),
    ("[[routes]]\npipeline='echo_summary'\n[routes.match]\nSliceThickness=[3, 1]\n", "min > max"),
    ("[[routes]]\npipeline='echo_summary'\nsend_to=['nowhere']\n", "unknown destination 'nowhere'"),
    ("[storage]\nretention_days = 0\n", "storage.retention_days"),
    ("[runtime]\nbackend = 'tensorflow'\n", "runtime.backend"),
    ("[imaging]\narray_backend = 'tpu'\n", "imaging.array_backend"),
    ("[dicom\n", "TOML syntax error"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("(", r"\(")):
        load_config(_write(tmp_path, text), {})


def test_env_override_is_validated() -> None:
    with pytest.raises(ConfigError, match="dicom.port"):
        load_config(None, {"AIWS_DICOM_PORT": "http"})


def test_unknown_pipeline_is_refused() -> None:
    cfg = Config.model_validate({"routes": [{"pipeline": "astrology"}]})
    with pytest.raises(ConfigError, match=r"routes\[0\].pipeline: unknown pipeline 'astrology'"):
        check_routes(cfg)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed")
def test_array_backend_that_cannot_run_stops_the_start(tmp_path: Path) -> None:
    from aiws.service import Service

    cfg = Config.model_validate({"imaging": {"array_backend": "cupy"}, "storage": {"data_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="imaging.array_backend: array backend 'cupy': cupy is not installed"):
        Service(cfg)


def test_cli_reports_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aiws.cli import main

    assert main(["status", "--config", str(_write(tmp_path, "[http]\nprot = 1\n"))]) == 2
    assert "http.prot: unknown key" in capsys.readouterr().err
