"""Accounts, sessions, API tokens, CSRF and the login rate limit (aiws.api.accounts, aiws.api.auth), through the
application (FastAPI's TestClient) on a real ledger."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from aiws.api import accounts
from aiws.api.app import create_app
from aiws.api.auth import SESSION_COOKIE, Principal, Role
from aiws.api.deps import ApiContext
from aiws.config import config_from_mapping
from aiws.errors import Conflict
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings
from pg import PgServer

PASSWORD = "console-pass-1234"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "aiws.db")
    yield led
    led.close()


def _client(tmp_path: Path, ledger: Ledger, **http: object) -> TestClient:
    config = config_from_mapping({"storage": {"data_dir": str(tmp_path)}, "http": http})
    network = NetworkStore(ledger)
    network.seed(config)
    ctx = ApiContext(config=config, ledger=ledger, network=network, admin_token="t", sender_settings=SenderSettings())
    return TestClient(create_app(ctx), follow_redirects=False)


@pytest.fixture
def client(tmp_path: Path, ledger: Ledger) -> Iterator[TestClient]:
    accounts.create_account(ledger, "alice", Role.RADIOLOGIST, PASSWORD)
    accounts.create_account(ledger, "root", Role.ADMIN, PASSWORD)
    with _client(tmp_path, ledger) as c:
        yield c


def _login(client: TestClient, name: str, password: str = PASSWORD, **extra: str) -> object:
    return client.post("/console/login", data={"username": name, "password": password, **extra})


def _csrf(client: TestClient, page: str = "/console/account") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text)
    assert match is not None
    return match.group(1)


def test_password_is_stored_as_an_argon2id_hash(ledger: Ledger) -> None:
    accounts.create_account(ledger, "alice", "radiologist", PASSWORD)
    [row] = ledger.query("SELECT password_hash FROM accounts WHERE name='alice'")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
    assert PasswordHasher().verify(row["password_hash"], PASSWORD)
    assert accounts.verify_password(ledger, "alice", PASSWORD) is not None
    assert accounts.verify_password(ledger, "alice", PASSWORD + "x") is None
    with pytest.raises(Conflict):
        accounts.create_account(ledger, "alice", "admin", PASSWORD)
    with pytest.raises(accounts.AccountError):
        accounts.create_account(ledger, "bob", "admin", "short")
    with pytest.raises(accounts.AccountError):
        accounts.create_account(ledger, "Bob Smith", "admin", PASSWORD)
    with pytest.raises(accounts.AccountError):
        accounts.create_account(ledger, "carol", "superuser", PASSWORD)


def test_hash_of_older_parameters_is_replaced_at_login(ledger: Ledger) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    accounts.create_account(ledger, "alice", "radiologist", PASSWORD)
    with ledger.transaction() as con:
        con.execute("UPDATE accounts SET password_hash=? WHERE name='alice'", (old,))
    assert accounts.verify_password(ledger, "alice", PASSWORD) is not None
    [row] = ledger.query("SELECT password_hash FROM accounts WHERE name='alice'")
    assert row["password_hash"] != old and not PasswordHasher().check_needs_rehash(row["password_hash"])


def test_login_sets_a_secure_session_cookie_and_audits(client: TestClient, ledger: Ledger) -> None:
    r = _login(client, "alice", next="/console/account")
    assert r.status_code == 303 and r.headers["location"] == "/console/account"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP here: test_https checks Secure over HTTPS
    session_id = client.cookies[SESSION_COOKIE]
    assert len(session_id) >= 40
    [stored] = ledger.query("SELECT id_sha256 FROM sessions")
    assert stored["id_sha256"] == accounts.sha256_hex(session_id)  # only the digest is kept
    assert client.get("/console/account").status_code == 200
    [login] = ledger.list_audit(action_prefix="login")
    assert login["actor"] == "user:alice" and login["detail"]["account"] == "alice"


def test_wrong_password_and_unknown_account_are_audited_without_the_password(client: TestClient,
                                                                             ledger: Ledger) -> None:
    r = _login(client, "alice", "guessed-password-1")
    assert r.status_code == 401 and "Wrong account name or password." in r.text
    assert SESSION_COOKIE not in client.cookies
    r = _login(client, "S3cr3t-typed-as-name", "guessed-password-2")
    assert r.status_code == 401
    rows = ledger.list_audit(action_prefix="login failed")
    assert [(row["actor"], row["detail"]["account"]) for row in rows] == [("anonymous", None), ("user:alice", "alice")]
    text = json.dumps(ledger.list_audit(1000)) + json.dumps([dict(r) for r in ledger.query(
        "SELECT * FROM login_failures")])
    assert "guessed-password" not in text and "S3cr3t" not in text  # neither passwords nor a name that is none


def test_five_failures_answer_429_with_retry_after(client: TestClient, ledger: Ledger) -> None:
    for _ in range(5):
        assert _login(client, "alice", "wrong-password-xx").status_code == 401
    r = _login(client, "alice")  # even the right password: the account is held for the window
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins" in r.text
    # the counts are ledger rows: another node on the same ledger (another app) refuses too
    tmp = Path(str(ledger.path)).parent
    with _client(tmp, ledger) as other:
        assert _login(other, "alice").status_code == 429
    # once the window has passed, the right password works again
    with ledger.transaction() as con:
        con.execute("UPDATE login_failures SET at = at - 301")
    assert _login(client, "alice").status_code == 303


def test_failures_are_also_counted_per_client_address(client: TestClient) -> None:
    for i in range(5):  # five different names, none of them an account, from one address
        assert _login(client, f"nobody{i}", "wrong-password-xx").status_code == 401
    assert _login(client, "root").status_code == 429  # the address is held, whatever the account


def test_session_expires(tmp_path: Path, ledger: Ledger) -> None:
    accounts.create_account(ledger, "alice", Role.RADIOLOGIST, PASSWORD)
    with _client(tmp_path, ledger, session_minutes=0.02) as client:  # 1.2 s
        assert _login(client, "alice").status_code == 303
        assert client.get("/console/account").status_code == 200
        deadline = time.time() + 30
        while client.get("/console/account").status_code == 200 and time.time() < deadline:
            time.sleep(0.3)
        r = client.get("/console/account")
        assert r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/account"


def test_writes_with_a_session_need_the_csrf_token(client: TestClient, ledger: Ledger) -> None:
    _login(client, "alice")
    assert client.post("/console/account/tokens", data={"label": "x"}).status_code == 403
    assert client.post("/console/account/tokens", data={"label": "x", "csrf_token": "forged"}).status_code == 403
    assert accounts.list_tokens(ledger, "alice") == []
    csrf = _csrf(client)
    assert client.post("/console/account/tokens", data={"label": "x", "csrf_token": csrf}).status_code == 201
    assert client.post("/console/logout", headers={"X-CSRF-Token": csrf}).status_code == 303  # header works too
    assert [t.label for t in accounts.list_tokens(ledger, "alice")] == ["x"]


def test_api_token_acts_with_its_role_until_revoked(client: TestClient, ledger: Ledger) -> None:
    token = accounts.issue_token(ledger, "alice", label="script")
    [stored] = ledger.query("SELECT token_sha256 FROM api_tokens")
    assert stored["token_sha256"] == accounts.sha256_hex(token) and token not in json.dumps(ledger.list_audit(100))
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/studies", headers=auth).status_code == 200
    assert client.get("/api/audit", headers=auth).status_code == 403  # radiologist, not admin
    assert client.post("/api/config/sources", headers=auth, json={"ae_title": "X", "any_host": True}).status_code == 403
    with pytest.raises(accounts.AccountError):
        accounts.issue_token(ledger, "alice", role=Role.ADMIN)  # never above its account
    [info] = accounts.list_tokens(ledger, "alice")
    accounts.revoke_token(ledger, info.token_id, "user:root")
    assert client.get("/api/studies", headers=auth).status_code == 401
    assert [r["action"] for r in ledger.list_audit(action_prefix="token")] == ["token revoked", "token issued"]


def test_disabled_account_loses_sessions_and_tokens(client: TestClient, ledger: Ledger) -> None:
    token = accounts.issue_token(ledger, "alice")
    _login(client, "alice")
    accounts.set_disabled(ledger, "alice", True, "user:root")
    assert client.get("/console/account").status_code == 303
    assert client.get("/api/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _login(client, "alice").status_code == 401


def test_admin_manages_accounts_in_the_console(client: TestClient, ledger: Ledger) -> None:
    _login(client, "root")
    csrf = _csrf(client, "/console/users")
    r = client.post("/console/users", data={"name": "bob", "role": "clinician", "password": PASSWORD,
                                            "csrf_token": csrf})
    assert r.status_code == 303
    r = client.post("/console/users/bob", data={"action": "role", "role": "ml-engineer", "csrf_token": csrf})
    assert r.status_code == 303 and accounts.get_account(ledger, "bob").role is Role.ML_ENGINEER  # type: ignore[union-attr]
    r = client.post("/console/users/bob", data={"action": "disable", "csrf_token": csrf})
    assert r.status_code == 303 and accounts.get_account(ledger, "bob").disabled  # type: ignore[union-attr]
    changed = [r for r in ledger.list_audit(action_prefix="account role changed")]
    assert changed[0]["detail"] == {"account": "bob", "old": "clinician", "new": "ml-engineer"}
    assert changed[0]["actor"] == "user:root"
    r = client.post("/console/users", data={"name": "bob", "role": "admin", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 422 and "already exists" in r.text


def test_own_password_change_checks_the_current_one_and_ends_sessions(client: TestClient, ledger: Ledger) -> None:
    _login(client, "alice")
    csrf = _csrf(client)
    wrong = client.post("/console/account/password", data={"current_password": "not-it-at-all",
                                                             "new_password": "a-new-password-1", "csrf_token": csrf})
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    assert len(ledger.query("SELECT * FROM login_failures")) == 1  # counted like a failed login
    r = client.post("/console/account/password", data={"current_password": PASSWORD,
                                                         "new_password": "a-new-password-1", "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert ledger.query("SELECT * FROM sessions WHERE account='alice'") == []
    assert _login(client, "alice").status_code == 401
    assert _login(client, "alice", "a-new-password-1").status_code == 303
    assert ledger.list_audit(action_prefix="account password changed")[0]["actor"] == "user:alice"


def test_login_redirects_only_inside_the_console(client: TestClient) -> None:
    assert _login(client, "alice", next="https://evil.example/x").headers["location"] == "/console/"
    assert _login(client, "alice", next="//evil.example/console/").headers["location"] == "/console/"
    assert _login(client, "root", next="/console/users").headers["location"] == "/console/users"


def test_login_form_posted_from_another_site_is_refused(client: TestClient) -> None:
    r = client.post("/console/login", data={"username": "alice", "password": PASSWORD},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_write_without_valid_credentials_is_refused_before_the_body(client: TestClient, ledger: Ledger) -> None:
    token = accounts.issue_token(ledger, "root")
    body = {"ae_title": "NEWPACS", "any_host": True}
    assert client.post("/api/config/sources", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/config/sources", json=body,
                       headers={"Authorization": f"Bearer {token}"}).status_code == 201  # an account's admin token
    [row] = ledger.list_audit(action_prefix="source added")
    assert row["actor"] == "user:root"


def test_cli_adds_an_account_and_issues_a_token(tmp_path: Path) -> None:
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    aiws = [str(Path(sys.executable).parent / "aiws"), "--config", str(cfg), "user"]
    env = {**os.environ, "AIWS_ADMIN_TOKEN": "t"}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*aiws, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)

    assert run("add", "dora", "--role", "ml-engineer", stdin=PASSWORD + "\n").returncode == 0
    short = run("add", "eve", "--role", "admin", stdin="short\n")
    assert short.returncode == 1 and "password: 10 to 1024 characters" in short.stderr
    token = run("token", "dora", "--label", "ci").stdout.strip()
    assert token.startswith("aiws_")
    refused = run("token", "dora", "--role", "admin")
    assert refused.returncode == 1 and "cannot act as admin" in refused.stderr
    assert "dora" in run("list").stdout and "ml-engineer" in run("list").stdout
    ledger = Ledger(tmp_path / "var" / "aiws.db")
    with _client(tmp_path, ledger) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/models", headers=headers).status_code != 401
        assert run("disable", "dora").returncode == 0
        assert client.get("/api/studies", headers=headers).status_code == 401
    assert [r["actor"] for r in ledger.list_audit(action_prefix="account")][-1] == "cli"
    ledger.close()


def test_the_same_functions_on_a_postgresql_ledger(tmp_path: Path, pg_server: PgServer) -> None:
    """Accounts, tokens, sessions and failed logins through the portable SQL on a real PostgreSQL."""
    ledger = Ledger(tmp_path / "aiws.db", pg_server.new_database())
    accounts.create_account(ledger, "alice", Role.RADIOLOGIST, PASSWORD)
    account = accounts.verify_password(ledger, "alice", PASSWORD)
    assert account is not None and account.role is Role.RADIOLOGIST
    assert accounts.verify_password(ledger, "alice", "wrong-password-xx") is None
    token = accounts.issue_token(ledger, "alice", label="pg")
    assert accounts.principal_of_token(ledger, token) == Principal("alice", Role.RADIOLOGIST, "token")
    session = accounts.open_session(ledger, account, 60, "127.0.0.1")
    found = accounts.session_principal(ledger, session.session_id)
    assert found is not None and found[1] == session.csrf
    for _ in range(5):
        accounts.record_login_failure(ledger, "alice", "10.0.0.1", 300)
    assert 0 < accounts.login_blocked_for(ledger, "alice", "10.0.0.2", 5, 300) <= 300
    assert accounts.login_blocked_for(ledger, "bob", "10.0.0.2", 5, 300) == 0
    accounts.revoke_token(ledger, accounts.list_tokens(ledger, "alice")[0].token_id, "test")
    assert accounts.principal_of_token(ledger, token) is None
    accounts.set_role(ledger, "alice", Role.CLINICIAN, "test")
    assert accounts.close_session(ledger, session.session_id) == "alice"
    assert [a.role for a in accounts.list_accounts(ledger)] == [Role.CLINICIAN]
    assert ledger.verify_audit().ok
    ledger.close()
