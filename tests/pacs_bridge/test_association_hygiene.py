"""Association hygiene against the running service: idle and half-open connections (raw sockets), per-address
limits, the TLS handshake off the accept thread (dcmtk echoscu over TLS, ``openssl s_client``).

Idle peers connect from 127.0.0.2 (any 127/8 address reaches loopback on Linux); the legitimate sender
(dcmtk) connects from 127.0.0.1, as a PACS on another host would.
"""
from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from certs import Certificate, issue, make_ca
from factories import make_ct_series
from peers import DCMTK_ENV, AiwsProcess, echoscu, storescu, wait_for

pytestmark = pytest.mark.network

IDLE_IP = "127.0.0.2"

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {{dicom_port}}
max_associations = 4
max_associations_per_host = 3
request_timeout_seconds = {request_timeout}
{tls}
[[dicom.sources]]
ae_title = "ECHOSCU"
host = "127.0.0.1"
[[dicom.sources]]
ae_title = "STORESCU"
host = "127.0.0.1"
[[dicom.sources]]
ae_title = "PYNET"
host = "127.0.0.1"
[http]
port = {{http_port}}
[storage]
data_dir = "{{data_dir}}"
min_free_mb = 1
"""


def _config(request_timeout: float, tls: str = "") -> str:
    return CONFIG.format(request_timeout=request_timeout, tls=tls)


def _tls_table(server: Certificate, ca: Certificate | None) -> str:
    lines = ["[dicom.tls]", f'cert_file = "{server.cert}"', f'key_file = "{server.key}"']
    if ca is not None:
        lines.append(f'ca_file = "{ca.cert}"')
    return "\n".join(lines)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[AiwsProcess]]:
    procs: list[AiwsProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


def _start(tmp_path: Path, started: list[AiwsProcess], config: str) -> AiwsProcess:
    proc = AiwsProcess(tmp_path, config, env={"AIWS_WORKERS": "0"})
    started.append(proc)
    return proc.start()


def _idle(port: int, source_ip: str = IDLE_IP, first_bytes: bytes = b"") -> socket.socket:
    """A connection that sends *first_bytes* (maybe nothing) and then nothing more."""
    sock = socket.socket()
    sock.bind((source_ip, 0))
    sock.connect(("127.0.0.1", port))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


#: An A-ASSOCIATE-RQ header announcing 200 bytes, then the first 4 of them: a half-open request.
HALF_ASSOCIATE_RQ = b"\x01\x00" + struct.pack(">I", 200) + b"\x00\x01\x00\x00"
#: A TLS handshake record header announcing 512 bytes, then 4 of them: a half-open ClientHello.
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc"


def _still_open(sock: socket.socket) -> bool:
    """True while the server has neither closed nor reset the connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def _three_held(port: int) -> bool:
    """Three idle connections from IDLE_IP, none of them refused (closed within 0.5 s; the request timeout
    of the test that calls this is 3 s)."""
    socks = [_idle(port) for _ in range(3)]
    try:
        return not any(_closed_by_server(s, 0.5) for s in socks)
    finally:
        _close_all(socks)


def test_idle_sockets_from_one_address_do_not_lock_out_a_sender(tmp_path: Path, started: list) -> None:
    aiws = _start(tmp_path, started, _config(request_timeout=300))
    idle = [_idle(aiws.dicom_port) for _ in range(20)]
    half = _idle(aiws.dicom_port, "127.0.0.3", first_bytes=HALF_ASSOCIATE_RQ)
    try:
        echo = echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU")
        assert echo.returncode == 0, echo.stdout + echo.stderr  # was: Local Limit Exceeded
        files = make_ct_series(tmp_path / "ct", n_slices=4, rows=16, cols=16)
        out = storescu("127.0.0.1", aiws.dicom_port, "AIWS", "STORESCU", files, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        # the address's limit is 3: beyond it, connections are closed at once, not queued
        assert sum(_closed_by_server(s, 10) for s in idle[3:]) == 17
        # 21 idle connections, more than max_associations (4), still open: they hold no association slot
        assert all(_still_open(s) for s in idle[:3]) and _still_open(half)
    finally:
        _close_all(idle + [half])
    assert "refused: 3 connections are open from this address" in aiws.log()


def test_idle_and_half_open_connections_are_closed_after_the_request_timeout(
        tmp_path: Path, started: list) -> None:
    aiws = _start(tmp_path, started, _config(request_timeout=3))
    idle = _idle(aiws.dicom_port)
    half = _idle(aiws.dicom_port, first_bytes=HALF_ASSOCIATE_RQ)
    try:
        assert _closed_by_server(idle, 30) and _closed_by_server(half, 30)
        # their slots are free again (the half-open one once pynetdicom's thread has ended): three more
        # from the same address are accepted and held open. A second between tries: each try's own connections
        # hold their slots until the server has seen them closed (before the closed-by-peer check, for the
        # whole ACSE timeout, and tries a second apart kept each other locked out for a minute in CI)
        wait_for(lambda: _three_held(aiws.dicom_port), timeout=60, interval=1.0, what="three idle connections held")
    finally:
        _close_all([idle, half])
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU").returncode == 0
    assert "connection from 127.0.0.2 closed: no association request within 3 s" in aiws.log()


def test_a_connection_closed_before_its_request_frees_its_slot_at_once(tmp_path: Path, started: list) -> None:
    # request and ACSE timeouts of 300 s: only the peer's close can free these slots within the test
    aiws = _start(tmp_path, started, _config(request_timeout=300))
    for _ in range(3):  # a probe, a health check, a peer that gave up: connect and close, three times over
        _close_all([_idle(aiws.dicom_port) for _ in range(3)])
        wait_for(lambda: _three_held(aiws.dicom_port), timeout=30, interval=0.5, what="three idle connections held")


def test_associations_from_one_address_count_against_its_limit(tmp_path: Path, started: list) -> None:
    aiws = _start(tmp_path, started, _config(request_timeout=10))
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(Verification)
    held = [ae.associate("127.0.0.1", aiws.dicom_port, ae_title="AIWS") for _ in range(3)]
    try:
        assert all(a.is_established for a in held)
        fourth = ae.associate("127.0.0.1", aiws.dicom_port, ae_title="AIWS")
        assert not fourth.is_established  # closed at once: 3 associations are open from 127.0.0.1
        held.pop().release()
        wait_for(lambda: "refused: 3 connections are open from this address" in aiws.log(), timeout=10,
                 what="the refusal logged")
        again = wait_for(lambda: _established(ae, aiws.dicom_port), timeout=10, what="a new association")
        assert again.send_c_echo().Status == 0
        again.release()
    finally:
        for a in held:
            a.release()


def test_a_peer_stalled_in_the_middle_of_a_pdu_is_dropped(tmp_path: Path, started: list) -> None:
    config = _config(request_timeout=10).replace("[[dicom.sources]]",
                                                 "network_timeout_seconds = 2\n[[dicom.sources]]", 1)
    aiws = _start(tmp_path, started, config)
    ae = AE(ae_title="PYNET")
    ae.add_requested_context(Verification)
    ae.network_timeout = ae.acse_timeout = 300  # our side waits: only the service may end it
    assoc = ae.associate("127.0.0.1", aiws.dicom_port, ae_title="AIWS")
    assert assoc.is_established
    # a P-DATA-TF header announcing 100 bytes, then 2 of them, then nothing
    assoc.dul.socket.socket.sendall(b"\x04\x00" + struct.pack(">I", 100) + b"\x00\x00")
    wait_for(lambda: not assoc.is_established, timeout=60, what="the service to drop the stalled association")
    assert echoscu("127.0.0.1", aiws.dicom_port, "AIWS", "ECHOSCU").returncode == 0


def _established(ae: AE, port: int) -> object:
    assoc = ae.associate("127.0.0.1", port, ae_title="AIWS")
    return assoc if assoc.is_established else None


# -- TLS -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return {"ca": ca, "server": issue(ca, folder, "aiws"), "client": issue(ca, folder, "echoscu")}


def _echoscu_tls(port: int, client: Certificate, ca: Certificate) -> subprocess.CompletedProcess[str]:
    cmd = ["echoscu", "+tls", str(client.key), str(client.cert), "+cf", str(ca.cert),
           "-aet", "ECHOSCU", "-aec", "AIWS", "127.0.0.1", str(port)]
    return subprocess.run(cmd, capture_output=True, text=True, env=DCMTK_ENV, timeout=60)


def _s_client(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    """``openssl s_client``: handshake, send a line that is no PDU, read until the service closes the connection
    (``-ign_eof``: with TLS 1.3 the refusal of a client certificate arrives after the client's handshake)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "aiws", "-ign_eof", *extra]
    return subprocess.run(cmd, input="x" * 10 + "\n", capture_output=True, text=True, timeout=60)


def test_tls_idle_and_half_open_handshakes_do_not_block_other_associations(
        tmp_path: Path, started: list, pki: dict[str, Certificate]) -> None:
    aiws = _start(tmp_path, started, _config(300, _tls_table(pki["server"], pki["ca"])))
    idle = _idle(aiws.dicom_port)  # connects, never says hello
    half = _idle(aiws.dicom_port, first_bytes=HALF_CLIENT_HELLO)
    try:
        for _ in range(3):
            out = _echoscu_tls(aiws.dicom_port, pki["client"], pki["ca"])
            assert out.returncode == 0, out.stdout + out.stderr
        assert _still_open(idle) and _still_open(half)  # the echoes did not wait for them to go
    finally:
        _close_all([idle, half])


def test_tls_with_ca_file_refuses_anonymous_clients(
        tmp_path: Path, started: list, pki: dict[str, Certificate]) -> None:
    # 4 s: how long the garbage line after a good handshake holds the connection open (s_client waits for that)
    aiws = _start(tmp_path, started, _config(4, _tls_table(pki["server"], pki["ca"])))
    for version in ("-tls1_2", "-tls1_3"):
        anonymous = _s_client(aiws.dicom_port, "-CAfile", str(pki["ca"].cert), version)
        text = anonymous.stdout + anonymous.stderr
        assert "alert" in text and ("certificate required" in text or "handshake failure" in text), text
    with_cert = _s_client(aiws.dicom_port, "-CAfile", str(pki["ca"].cert), "-cert", str(pki["client"].cert),
                          "-key", str(pki["client"].key), "-tls1_2")
    assert "Verify return code: 0 (ok)" in with_cert.stdout and "alert" not in with_cert.stderr
    wait_for(lambda: "connection from 127.0.0.1 TLS handshake failed: peer did not return a certificate"
             in aiws.log(), timeout=10, what="the refusal logged")
    assert "without ca_file" not in aiws.log()


def test_tls_without_ca_file_warns_at_start(tmp_path: Path, started: list, pki: dict[str, Certificate]) -> None:
    aiws = _start(tmp_path, started, _config(4, _tls_table(pki["server"], None)))  # 4 s: as above
    assert "DICOM TLS on port" in aiws.log() and "without ca_file: clients are not authenticated" in aiws.log()
    anonymous = _s_client(aiws.dicom_port, "-CAfile", str(pki["ca"].cert), "-tls1_2")
    assert "Verify return code: 0 (ok)" in anonymous.stdout and "alert" not in anonymous.stderr
