"""Start-up that fails clearly: a taken HTTP or DICOM port, a bad certificate, an unwritable data_dir and a
data_dir another service holds each end ``aiws serve`` with exit code 2 and one line naming the problem (no
traceback, nothing left running); ``aiws --version``; ``aiws config check FILE``; ``aiws status`` says whether
the service runs. Against the real ``aiws`` command and real sockets."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiws import __version__
from peers import AiwsProcess, free_port

pytestmark = [pytest.mark.network]

AIWS = str(Path(sys.executable).parent / "aiws")

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
"""


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIWS_ADMIN_TOKEN": "test-token", "AIWS_WORKERS": "0"}
    return subprocess.run([AIWS, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _serve(tmp_path: Path, dicom_port: int, http_port: int, extra: str = "",
           data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(CONFIG.format(dicom_port=dicom_port, http_port=http_port, data_dir=data_dir or tmp_path / "var")
                   + extra)
    return _run("serve", "--config", str(cfg))


def _the_one_line(run: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, no traceback, exactly one 'cannot start' line: returned."""
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if "cannot start" in line]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real TCP listener on a free loopback port (the 'other service')."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_http_port_in_use_exits_2_naming_it(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    dicom_port = free_port()
    line = _the_one_line(_serve(tmp_path, dicom_port, port))
    assert f"HTTP port 127.0.0.1:{port} is already in use" in line
    with socket.socket() as probe:  # the DICOM port was not left open by a half-started service
        assert probe.connect_ex(("127.0.0.1", dicom_port)) != 0


def test_dicom_port_in_use_exits_2_naming_it(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    line = _the_one_line(_serve(tmp_path, port, free_port()))
    assert f"DICOM port 127.0.0.1:{port} is already in use" in line
    assert "service started" not in (tmp_path / "var" / "aiws.db").read_bytes().decode("latin-1")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def test_bad_certificate_exits_2_naming_the_files(tmp_path: Path) -> None:
    cert, key, other_key = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "other.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
             "-subj", "/CN=aiws")
    _openssl("genrsa", "-out", str(other_key), "2048")
    tls = f'[dicom.tls]\ncert_file = "{cert}"\nkey_file = "{other_key}"\n'  # the key of another certificate
    line = _the_one_line(_serve(tmp_path, free_port(), free_port(), tls))
    assert f"dicom.tls: certificate {cert} with key {other_key} cannot be loaded" in line
    assert "SSLError" in line

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    line = _the_one_line(_serve(tmp_path, free_port(), free_port(),
                                f'[dicom.tls]\ncert_file = "{garbage}"\nkey_file = "{key}"\n'))
    assert f"certificate {garbage}" in line


def test_unwritable_data_dir_exits_2_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data_dir = blocker / "var"  # its parent is a file: it cannot be made
    line = _the_one_line(_serve(tmp_path, free_port(), free_port(), data_dir=data_dir))
    assert f"storage.data_dir {data_dir}: not writable (NotADirectoryError" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0500 folder anyway")
def test_read_only_data_dir_exits_2_naming_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o500)
    try:
        line = _the_one_line(_serve(tmp_path, free_port(), free_port(), data_dir=data_dir))
    finally:
        data_dir.chmod(0o700)
    assert f"storage.data_dir {data_dir}: not writable (PermissionError" in line


def test_version() -> None:
    run = _run("--version")
    assert (run.returncode, run.stdout.strip()) == (0, f"aiws {__version__}")


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[dicom.destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 104\n'
                    '[[routes]]\npipeline = "lung_nodules"\nsend_to = ["pacs"]\n'
                    '[pipelines.coronary_ct]\nacquisition_check = "refuse"\n'
                    f'[storage]\ndata_dir = "{tmp_path / "never-made"}"\n')
    run = _run("config", "check", str(good))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{good}: valid (1 routes, 1 destinations, pipelines lung_nodules)" in run.stdout
    assert not (tmp_path / "never-made").exists()  # nothing was started or made

    cases = {
        '[[routes]]\npipeline = "lung_nodule"\n': "routes[0].pipeline: unknown pipeline 'lung_nodule'",
        "[pipelines.coronary_ct]\nacquisition_check = \"sometimes\"\n": "pipelines.coronary_ct.acquisition_check",
        "[pipelines.lungs]\nx = 1\n": "pipelines.lungs: unknown pipeline",
        "[http]\nprot = 1\n": "http.prot: unknown key",
        '[audit]\nsyslog = "http://collector:514"\n': "audit.syslog",
        "[dicom\n": "TOML syntax error",
    }
    for i, (text, expected) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.toml"
        bad.write_text(text)
        run = _run("config", "check", str(bad))
        assert run.returncode == 2, (text, run.stdout, run.stderr)
        assert expected in run.stderr, (text, run.stderr)


def test_status_says_whether_the_service_runs(tmp_path: Path) -> None:
    aiws = AiwsProcess(tmp_path, CONFIG, env={"AIWS_WORKERS": "0"})
    cfg = tmp_path / "aiws.toml"
    aiws.start()
    try:
        run = _run("status", "--config", str(cfg))
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[0] == (f"service: running (pid {aiws.proc.pid}); API "  # type: ignore[union-attr]
                                              f"http://127.0.0.1:{aiws.http_port} answers")
        # a second service on the same data directory is refused, naming the first
        second = tmp_path / "second.toml"
        second.write_text(CONFIG.format(dicom_port=free_port(), http_port=free_port(), data_dir=aiws.data_dir))
        line = _the_one_line(_run("serve", "--config", str(second)))
        assert f"already used by a running aiws (pid {aiws.proc.pid})" in line  # type: ignore[union-attr]
    finally:
        aiws.stop()
    run = _run("status", "--config", str(cfg))
    assert run.returncode == 0 and run.stdout.splitlines()[0] == "service: not running", run.stdout
    assert '"running": false' in _run("status", "--json", "--config", str(cfg)).stdout
