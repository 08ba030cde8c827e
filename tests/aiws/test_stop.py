"""Every way a supervisor stops ``aiws serve`` ends it with exit status 0, no traceback, within a bound.

systemd (``KillMode=control-group``), ``timeout``, a container runtime without an init and Ctrl-C in a
terminal signal the whole process group at once, workers included. The service is started in its own
session here, so that the tests can signal its group as they do.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from peers import AiwsProcess, free_port, storescu, wait_for

pytestmark = [pytest.mark.network, pytest.mark.slow]

#: Generous: a stop takes about a second; the bound only catches a hang on a loaded 2-core machine.
STOP_BOUND_S = 20.0

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.destinations]]
name = "sink"
ae_title = "SINK"
host = "127.0.0.1"
port = SINK_PORT
[study]
quiet_seconds = 1
[[routes]]
pipeline = "PIPELINE"
send_to = ["sink"]
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
count = 2
stop_grace_seconds = 1
[runtime]
model_repository = "REPO"
"""
REPO = Path(__file__).resolve().parents[2] / "triton_repo"


class GroupAiws(AiwsProcess):
    """``aiws serve`` as the leader of its own process group, with stdout and stderr kept apart."""

    last_workers: list[int] = []  # noqa: RUF012 - set per instance by stopped_by()

    def start(self) -> GroupAiws:
        self.dicom_port = self.dicom_port or free_port()
        self.http_port = self.http_port or free_port()
        cfg = self.workdir / "aiws.toml"
        cfg.write_text(self.config_text.format(dicom_port=self.dicom_port, http_port=self.http_port,
                                               data_dir=self.data_dir))
        env = {**os.environ, "AIWS_ADMIN_TOKEN": "test-token", **self.env}
        with open(self.workdir / "aiws.log", "ab") as out, open(self.workdir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                [str(Path(os.sys.executable).parent / "aiws"), "serve", "--config", str(cfg)],
                stdout=out, stderr=err, env=env, start_new_session=True,
            )
        wait_for(self._up, timeout=60, what="aiws HTTP /health")
        return self

    def log(self) -> str:
        return "".join((self.workdir / n).read_text(errors="replace")
                       for n in ("aiws.log", "stderr.log") if (self.workdir / n).exists())

    def workers(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "spawn_main"],  # not the resource tracker
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stopped_by(self, send: str, sig: signal.Signals) -> tuple[int, float]:
        """Send *sig* to the main process ("main") or its whole group ("group"); the exit status and seconds."""
        assert self.proc is not None
        self.last_workers = self.workers()
        t0 = time.monotonic()
        if send == "group":
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"aiws serve did not stop within {STOP_BOUND_S:.0f} s of {sig.name} to the {send}:\n"
                        f"{self.log()[-3000:]}")
        seconds = time.monotonic() - t0
        self.proc = None
        return code, seconds

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def _aiws(tmp_path: Path, pipeline: str = "echo_summary", name: str = "aiws") -> GroupAiws:
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    text = CONFIG.replace("SINK_PORT", str(free_port())).replace("PIPELINE", pipeline).replace("REPO", str(REPO))
    return GroupAiws(workdir, text)


def _assert_clean_exit(aiws: GroupAiws, code: int) -> None:
    stderr = (aiws.workdir / "stderr.log").read_text(errors="replace")
    assert code == 0, aiws.log()[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert "stopping" in aiws.log()
    assert aiws.last_workers, "the service had no worker to stop"
    wait_for(lambda: all(not _alive(p) or _zombie(p) for p in aiws.last_workers), timeout=5,
             what="no worker outliving the service")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("send", "sig"), [("main", signal.SIGTERM), ("group", signal.SIGTERM),
                                           ("group", signal.SIGINT), ("main", signal.SIGINT)])
def test_signal_stops_the_service(tmp_path: Path, send: str, sig: signal.Signals) -> None:
    aiws = _aiws(tmp_path).start()
    try:
        wait_for(lambda: len(aiws.workers()) == 2, timeout=30, what="two workers")
        code, _ = aiws.stopped_by(send, sig)
        _assert_clean_exit(aiws, code)
    finally:
        aiws.stop()


def test_stop_after_a_worker_was_killed(tmp_path: Path) -> None:
    """A worker killed with SIGKILL (the OOM killer) just before the stop leaves nothing locked."""
    aiws = _aiws(tmp_path).start()
    try:
        workers = wait_for(lambda: (w := aiws.workers()) and len(w) == 2 and w, timeout=30, what="two workers")
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: not _alive(workers[0]) or _zombie(workers[0]), timeout=10, what="worker gone")
        code, _ = aiws.stopped_by("group", signal.SIGTERM)
        _assert_clean_exit(aiws, code)
    finally:
        aiws.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _job_states(data_dir: Path) -> list[str]:
    con = sqlite3.connect(data_dir / "aiws.db")
    try:
        return [r[0] for r in con.execute("SELECT state FROM jobs ORDER BY id")]
    finally:
        con.close()


@pytest.mark.skipif(not (REPO / "lung_nodules" / "config.pbtxt").exists(), reason="no lung_nodules model exported")
def test_stop_during_a_running_job_resumes_it_at_the_next_start(tmp_path: Path) -> None:
    from training.ct_dicom import CtSeriesInfo, write_ct_series
    from training.lung_nodules.phantom import PhantomConfig, generate_phantom

    phantom = generate_phantom(3, PhantomConfig(pixel_mm=(0.8, 0.8), slice_mm=(1.25, 1.25), nodules=(1, 1)))
    files = write_ct_series(phantom.hu.astype("float32"), phantom.affine, tmp_path / "ct",
                            CtSeriesInfo(seed_text="stop-test", study_uid=generate_uid()))
    aiws = _aiws(tmp_path, pipeline="lung_nodules").start()
    try:
        sent = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files)
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: _job_states(aiws.data_dir) == ["running"], timeout=120, what="the lung job running")
        code, _ = aiws.stopped_by("group", signal.SIGTERM)
        _assert_clean_exit(aiws, code)
        assert _job_states(aiws.data_dir) == ["pending"]  # stopped mid-job, back in the queue
        assert "its job resumes at the next start" in aiws.log()
    finally:
        aiws.stop()
    again = GroupAiws(aiws.workdir, aiws.config_text).start()
    try:
        wait_for(lambda: _job_states(again.data_dir) == ["done"], timeout=300, what="the lung job done")
        code, _ = again.stopped_by("group", signal.SIGTERM)
        _assert_clean_exit(again, code)
    finally:
        again.stop()
