"""HTTP limits against ``aiws serve``: the admin token is checked before a body is read, body sizes while
they stream, and odd values (huge integers, deep JSON, long or malformed hosts, "yes" for a boolean)
answer 4xx naming the field, never 500. Raw sockets send what a client library would not."""
from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiws.api.limits import huge_integer_at, json_too_deep
from peers import AiwsProcess

pytestmark = pytest.mark.network

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[[dicom.sources]]
ae_title = "CT1"
host = "127.0.0.1"
[http]
host = "127.0.0.1"
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
[workers]
count = 0
"""
AUTH = {"Authorization": "Bearer test-token"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def aiws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiwsProcess]:
    proc = AiwsProcess(tmp_path_factory.mktemp("aiws"), CONFIG)
    try:
        yield proc.start()
    finally:
        proc.stop()


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def _status(sock: socket.socket, timeout: float = 10.0) -> int:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def _declared_only(aiws: AiwsProcess, path: str, length: int, auth: bool, method: str = "POST") -> int:
    """Send the headers of a *length*-byte JSON body and no body: the answer can only come before reading."""
    headers = {"Content-Type": "application/json", "Content-Length": str(length), **(AUTH if auth else {})}
    with socket.create_connection(("127.0.0.1", aiws.http_port)) as sock:
        sock.sendall(_head(method, path, headers))
        return _status(sock)


def test_write_without_token_is_refused_before_its_body_is_read(aiws: AiwsProcess) -> None:
    assert _declared_only(aiws, "/api/config/sources", 60 * MIB, auth=False) == 401
    assert _declared_only(aiws, "/api/config/destinations/pacs", 10, auth=False, method="PUT") == 401
    assert _declared_only(aiws, "/api/config/ae", 10, auth=False, method="PUT") == 401
    # a body that is not even JSON: 401 (checked first), not 422
    r = httpx.post(f"{aiws.url}/api/config/sources", content=b"{not json", timeout=10)
    assert r.status_code == 401
    assert httpx.delete(f"{aiws.url}/api/config/sources/CT1", timeout=10).status_code == 401


def test_declared_length_over_the_limit_is_refused_before_reading(aiws: AiwsProcess) -> None:
    assert _declared_only(aiws, "/api/config/sources", 60 * MIB, auth=True) == 413
    assert _declared_only(aiws, "/api/plugins/sepsis", 60 * MIB, auth=True) == 413


def _stream(aiws: AiwsProcess, path: str, total: int, chunk: int = 64 * 1024) -> tuple[int, int]:
    """Send a chunked body of up to *total* bytes, watching for an early answer; (status, bytes sent by then)."""
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **AUTH}
    sent = 0
    with socket.create_connection(("127.0.0.1", aiws.http_port)) as sock:
        sock.sendall(_head("POST", path, headers))
        piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
        try:
            while sent < total and not select.select([sock], [], [], 0.02)[0]:
                sock.sendall(piece)
                sent += chunk
            if sent >= total:
                sock.sendall(b"0\r\n\r\n")  # the whole body went in: end it, the answer comes after
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        return _status(sock), sent


def test_streamed_body_is_cut_off_while_it_is_read(aiws: AiwsProcess) -> None:
    status, sent = _stream(aiws, "/api/config/sources", total=64 * MIB)
    assert status == 413
    assert sent < 16 * MIB, f"{sent} bytes sent before the answer (limit 1 MiB)"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_four_large_bodies_do_not_grow_the_service(aiws: AiwsProcess) -> None:
    assert aiws.proc is not None
    before = _rss_kib(aiws.proc.pid)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda path: _stream(aiws, path, total=60 * MIB),
                                ["/api/config/sources", "/api/config/destinations", "/api/plugins/sepsis",
                                 "/api/plugins/ed_flow"]))
    time.sleep(0.5)
    grown_mib = (_rss_kib(aiws.proc.pid) - before) / 1024
    assert [status for status, _ in results] == [413] * 4, results
    assert grown_mib < 100, f"resident memory grew by {grown_mib:.0f} MiB for four 60 MiB bodies"


def _post(aiws: AiwsProcess, path: str, body: Any = None, content: bytes | None = None,
          method: str = "POST") -> httpx.Response:
    kw: dict[str, Any] = {"content": content} if content is not None else {"json": body}
    return httpx.request(method, f"{aiws.url}{path}", headers={**AUTH, "Content-Type": "application/json"},
                         timeout=30, **kw)


def _locs(response: httpx.Response) -> list[list[Any]]:
    return [e["loc"] for e in response.json()["detail"]]


DEST = {"name": "pacs", "ae_title": "PACS", "host": "10.1.2.3", "port": 4242}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/config/destinations", {**DEST, "port": 10**40}, ["body", "port"]),
    ("/api/config/destinations", {**DEST, "host": "h" * 300}, ["body", "host"]),
    ("/api/config/destinations", {**DEST, "host": "bad host!"}, ["body", "host"]),
    ("/api/config/destinations", {**DEST, "host": "999.1.2.3"}, ["body", "host"]),
    ("/api/config/destinations", {**DEST, "tls": "yes"}, ["body", "tls"]),
    ("/api/config/destinations", {**DEST, "pdf_report": 1}, ["body", "pdf_report"]),
    ("/api/config/sources", {"ae_title": "CT9", "host": "-x.example"}, ["body", "host"]),
])
def test_odd_values_answer_422_naming_the_field(aiws: AiwsProcess, path: str, body: Any, field: list[str]) -> None:
    r = _post(aiws, path, body)
    assert r.status_code == 422, r.text
    assert field in _locs(r), r.text
    assert "h" * 300 not in r.text  # the value is not echoed back


def test_valid_hosts_are_taken(aiws: AiwsProcess) -> None:
    for i, host in enumerate(["10.1.2.3", "pacs-1.hospital.example", "fe80::1", "localhost"]):
        r = _post(aiws, "/api/config/destinations", {**DEST, "name": f"ok{i}", "host": host, "tls": False})
        assert r.status_code == 201, (host, r.text)
        assert httpx.delete(f"{aiws.url}/api/config/destinations/ok{i}", headers=AUTH, timeout=10).status_code == 204


def test_five_mib_host_is_refused(aiws: AiwsProcess) -> None:
    body = json.dumps({"ae_title": "BIG", "host": "h" * (5 * MIB)}).encode()
    assert _declared_only(aiws, "/api/config/sources", len(body), auth=True) == 413
    assert all(s["ae_title"] != "BIG" for s in httpx.get(f"{aiws.url}/api/config/sources", headers=AUTH,
                                                                    timeout=10).json())


@pytest.mark.parametrize("path", ["/api/config/sources", "/api/plugins/sepsis", "/api/plugins/pharmacy"])
def test_deeply_nested_json_answers_422(aiws: AiwsProcess, path: str) -> None:
    r = _post(aiws, path, content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 422, r.text
    assert _locs(r) == [["body"]]


@pytest.mark.parametrize(("path", "content", "field"), [
    ("/api/config/destinations", b'{"name": "p", "ae_title": "P", "host": "h", "port": ' + b"9" * 5000 + b"}",
     ["body", "port"]),
    ("/api/plugins/sepsis", b'{"observations": [{"heart_rate": ' + b"9" * 5000 + b"}]}",
     ["body", "observations", 0, "heart_rate"]),
])
def test_integers_past_python_s_digit_limit_answer_422_naming_the_field(
        aiws: AiwsProcess, path: str, content: bytes, field: list[Any]) -> None:
    r = _post(aiws, path, content=content)
    assert r.status_code == 422, r.text
    assert _locs(r) == [field]


@pytest.mark.parametrize(("path", "field"), [
    (f"/api/jobs/{10**30}", ["path", "job_id"]),
    (f"/api/studies?offset={10**30}", ["query", "offset"]),
    (f"/api/studies?limit={'9' * 5000}", ["query", "limit"]),
    ("/api/studies?unrouted=yes", ["query", "unrouted"]),
])
def test_bounded_parameters_answer_422(aiws: AiwsProcess, path: str, field: list[str]) -> None:
    r = httpx.get(f"{aiws.url}{path}", headers=AUTH, timeout=10)
    assert r.status_code == 422, r.text
    assert field in _locs(r)


def test_huge_send_id_on_retry_answers_422(aiws: AiwsProcess) -> None:
    r = _post(aiws, f"/api/sends/{10**30}/retry", content=b"")
    assert r.status_code == 422, r.text
    assert ["path", "send_id"] in _locs(r)


def test_strict_boolean_for_the_local_ae(aiws: AiwsProcess) -> None:
    r = _post(aiws, "/api/config/ae", {"require_known_source": "false"}, method="PUT")
    assert r.status_code == 422 and ["body", "require_known_source"] in _locs(r), r.text
    assert httpx.get(f"{aiws.url}/api/config/ae", headers=AUTH, timeout=10).json()["require_known_source"] is True


def _depth(node: Any) -> int:
    if isinstance(node, dict | list):
        return 1 + max((_depth(v) for v in (node.values() if isinstance(node, dict) else node)), default=0)
    return 0


_TRICKY = st.text(alphabet='[]{}"\\ab', max_size=6)  # brackets, quotes and backslashes inside strings
_JSON = st.recursive(st.none() | st.integers() | _TRICKY,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
                     max_leaves=60)


@settings(max_examples=300, deadline=None, database=None)
@given(doc=_JSON, limit=st.integers(min_value=0, max_value=12))
def test_depth_check_agrees_with_the_parsed_document(doc: Any, limit: int) -> None:
    text = json.dumps(doc).encode()
    assert json_too_deep(text, limit) == (_depth(doc) > limit)
    assert huge_integer_at(text, 1000) is None


def test_huge_integer_is_located() -> None:
    assert huge_integer_at(b'{"a": [1, {"b": ' + b"9" * 1001 + b"}]}", 1000) == ["a", 1, "b"]
    assert huge_integer_at(b'{"a": "' + b"9" * 2000 + b'"}', 1000) is None  # digits in a string are text
