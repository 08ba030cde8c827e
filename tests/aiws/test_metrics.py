"""``/metrics`` of a running ``aiws serve`` after a study went through (dcmtk storescu in, echo_summary, dcmtk
storescp out), parsed with prometheus_client's text parser; the same run's audit export caught by a real UDP
listener. And the per-model inference histogram from ledger rows (no network model runs in the service test)."""
from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from aiws.config import Config
from aiws.ledger import InstanceRow, Ledger, NewJob
from aiws.metrics import exposition
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, free_port, storescu, wait_for

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
[[routes]]
pipeline = "echo_summary"
send_to = ["sink"]
[http]
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[audit]
syslog = "udp://127.0.0.1:COLLECTOR_PORT"
"""


def _samples(text: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    yield sock
    sock.close()


def _drain(sock: socket.socket, until: bytes, timeout_s: float = 30) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not any(until in f for f in frames):
        try:
            frames.append(sock.recv(65535))
        except TimeoutError:
            continue
    return frames


@pytest.mark.network
def test_metrics_of_a_running_service_after_a_study(tmp_path: Path, collector: socket.socket) -> None:
    sink_port = free_port()
    sink_dir = tmp_path / "sink"
    sink_dir.mkdir()
    sink = subprocess.Popen(["storescp", "-aet", "SINK", "-od", str(sink_dir), str(sink_port)], env=DCMTK_ENV)
    work = tmp_path / "aiws"
    work.mkdir()
    config = CONFIG.replace("SINK_PORT", str(sink_port)).replace(
        "COLLECTOR_PORT", str(collector.getsockname()[1]))
    aiws = AiwsProcess(work, config, env={"AIWS_WORKERS": "1", "AIWS_QUIET_SECONDS": "1"})
    try:
        aiws.start()
        files = make_ct_series(tmp_path / "ct", 3)
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: [s["state"] for s in aiws.api("/api/sends")] == ["done"], timeout=120,
                 what="the results sent")
        text = httpx.get(f"{aiws.url}/metrics", timeout=30).text
        m = _samples(text)
        spooled = sum(p.stat().st_size for p in (aiws.data_dir / "spool").rglob("*.dcm"))
        assert _value(m["aiws_instances_received"], "aiws_instances_received_total") == 3
        assert _value(m["aiws_received_bytes"], "aiws_received_bytes_total") == spooled > 0
        assert _value(m["aiws_instances"], "aiws_instances", state="total") == 3  # the old names are kept
        assert _value(m["aiws_studies"], "aiws_studies", state="complete") == 1
        assert _value(m["aiws_sends"], "aiws_sends", state="done") == 1
        assert _value(m["aiws_associations"], "aiws_associations_total", outcome="released") == 1
        assert _value(m["aiws_associations"], "aiws_associations_total", outcome="rejected") == 0
        assert _value(m["aiws_queue_depth"], "aiws_queue_depth", queue="jobs") == 0
        assert _value(m["aiws_queue_depth"], "aiws_queue_depth", queue="sends") == 0
        assert m["aiws_send_failures"] == []
        total = dict(pipeline="echo_summary", stage="job")  # claimed to finished
        assert _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_count", pipeline="echo_summary",
                      stage="total") == 1  # the pipeline's own timing
        assert _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_count", **total) == 1
        assert _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_bucket", le="+Inf", **total) == 1
        assert 0 < _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_sum", **total) < 120
        assert _value(m["aiws_disk_free_bytes"], "aiws_disk_free_bytes") > 0
        assert _value(m["aiws_quarantine_bytes"], "aiws_quarantine_bytes") == 0
        assert _value(m["aiws_health_degraded"], "aiws_health_degraded") == 0

        frames = _drain(collector, b"results sent")
        text_frames = b"\n".join(frames)
        assert b'csd-code="110120"' in text_frames  # Application Start
        assert b'originalText="association"' in text_frames and b'originalText="job done"' in text_frames
        assert b"PHANTOM" not in text_frames  # the patient's name and ID are in no audit message
    finally:
        aiws.stop()
        sink.terminate()
        sink.wait()
    assert any(b'csd-code="110121"' in f for f in _drain(collector, b'csd-code="110121"'))  # Application Stop
    ledger = Ledger(aiws.data_dir / "aiws.db")
    assert ledger.verify_audit().ok
    assert int(ledger.meta_value("audit_exported_id") or 0) == ledger.query("SELECT MAX(id) FROM audit")[0][0]


def test_inference_time_per_model_and_stage_histograms(tmp_path: Path) -> None:
    config = Config.model_validate({"storage": {"data_dir": str(tmp_path)}})
    ledger = Ledger(tmp_path / "aiws.db")
    for i, (network_s, version) in enumerate([(4.2, "1.0.0 model lung_nodules v6"), (0.2, "1.0.0 model lung_nodules v6"),
                                              (40.0, "1.0.0 model lung_nodules v7")]):
        study = f"1.2.3.{i}"
        ledger.record_instance(InstanceRow(f"{study}.1", study, f"{study}.2", "1.2.840.10008.5.1.4.1.1.2", "CT", "",
                                           "/x", 100, "CT1", "", 1.0))
        ledger.complete_study(study, 1.0, [NewJob("lung_nodules", (f"{study}.2",), ())], 2.0)
        job = ledger.claim_job("w", 3.0)
        assert job is not None
        ledger.finish_job(job.id, [], {"pipeline_version": version,
                                       "timings_s": {"load": 0.3, "network": network_s, "classifier": 0.05}}, [], 60.0)
    m = _samples(exposition(config, ledger).decode())
    inference = m["aiws_inference_seconds"]
    v6 = dict(model="1.0.0 model lung_nodules v6", stage="network")
    assert _value(inference, "aiws_inference_seconds_count", **v6) == 2
    assert _value(inference, "aiws_inference_seconds_bucket", le="0.25", **v6) == 1
    assert _value(inference, "aiws_inference_seconds_bucket", le="5.0", **v6) == 2
    assert _value(inference, "aiws_inference_seconds_sum", **v6) == pytest.approx(4.4)
    assert _value(inference, "aiws_inference_seconds_count", model="1.0.0 model lung_nodules v7",
                  stage="classifier") == 1
    stages = {s.labels["stage"] for s in m["aiws_job_duration_seconds"]}
    assert stages == {"load", "network", "classifier", "job"}
    assert _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_bucket", pipeline="lung_nodules",
                  stage="job", le="60.0") == 3  # 57 s each, claimed at 3 s and finished at 60 s
    assert _value(m["aiws_instances_received"], "aiws_instances_received_total") == 3
    assert _value(m["aiws_received_bytes"], "aiws_received_bytes_total") == 300


def test_histograms_of_jobs_done_before_schema_3_are_backfilled(tmp_path: Path) -> None:
    config = Config.model_validate({"storage": {"data_dir": str(tmp_path)}})
    ledger = Ledger(tmp_path / "aiws.db")
    ledger.record_instance(InstanceRow("1.2.3.1", "1.2.3", "1.2.3.2", "1.2.840.10008.5.1.4.1.1.2", "CT", "", "/x", 10,
                                       "CT1", "", 1.0))
    ledger.complete_study("1.2.3", 1.0, [NewJob("coronary_ct", ("1.2.3.2",), ())], 2.0)
    job = ledger.claim_job("w", 3.0)
    assert job is not None
    ledger.finish_job(job.id, [], {"pipeline_version": "m1", "timings_s": {"network": 2.0, "load": 0.5}}, [], 13.0)
    before = exposition(config, ledger)
    ledger.close()
    con = sqlite3.connect(tmp_path / "aiws.db")  # as a schema-2 ledger was: no histograms kept
    con.executescript("DROP TABLE duration_buckets; DROP TABLE duration_totals;"
                      "UPDATE meta SET value='2' WHERE key='schema_version';")
    con.close()
    ledger = Ledger(tmp_path / "aiws.db")
    m = _samples(exposition(config, ledger).decode())
    kept = _samples(before.decode())
    for name in ("aiws_job_duration_seconds", "aiws_inference_seconds"):
        assert m[name] == kept[name] and len(m[name]) > 0
    assert _value(m["aiws_job_duration_seconds"], "aiws_job_duration_seconds_sum", pipeline="coronary_ct",
                  stage="job") == 10.0
    assert _value(m["aiws_inference_seconds"], "aiws_inference_seconds_count", model="m1", stage="network") == 1
