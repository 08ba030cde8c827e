"""Who may call what: every route of the application × every role (and no credentials) → allowed or refused.

:data:`POLICY` is the policy, written down: one entry per (method, path) of the application, naming the roles
allowed (admin is in every set: it passes every check), or :data:`OPEN` for what needs no credentials. The
tests walk ``app.routes``; a route without an entry fails, naming the entry to add (with the roles its
``requires(...)`` declares), and so does an entry whose route is gone or whose roles differ from the route's
declaration. Then each route is called with an API token of each role and with none: a role in the entry must
not get 401/403; a role not in it must get 403; no credentials get 401 (API) or a redirect to the login page
(console pages, /docs, /redoc).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from aiws.api import accounts
from aiws.api.app import create_app
from aiws.api.auth import OpenUnless, Role, RoleCheck
from aiws.api.deps import ApiContext
from aiws.config import config_from_mapping
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.routestore import RouteStore
from pacs_bridge.settings import SenderSettings

A, R, M, C = Role.ADMIN, Role.RADIOLOGIST, Role.ML_ENGINEER, Role.CLINICIAN
OPEN = frozenset({"open"})  # no credentials needed
READ = frozenset({A, R, M})  # reads of studies, jobs, sends, associations, quarantine, models
ACT = frozenset({A, R})  # retry, reprocess, resend
ADMIN = frozenset({A})  # network, AE, rules, accounts, audit
MODELS = frozenset({A, M})  # promote, roll back
PLUGINS = frozenset({A, C})
ANYONE = frozenset(Role)  # any signed-in user
#: /health and /metrics: open unless [http] open_health / open_metrics = false, then any signed-in user.
OPEN_BY_DEFAULT = OPEN

POLICY: dict[tuple[str, str], frozenset[object]] = {
    # health, metrics, quarantine (aiws/api/routes/health.py)
    ("GET", "/health"): OPEN_BY_DEFAULT,
    ("GET", "/metrics"): OPEN_BY_DEFAULT,
    ("GET", "/api/quarantine"): READ,
    # studies, jobs, sends, associations, audit (studies.py)
    ("GET", "/api/studies"): READ,
    ("GET", "/api/studies/{study_uid}"): READ,
    ("GET", "/api/jobs"): READ,
    ("GET", "/api/jobs/{job_id}"): READ,
    ("GET", "/api/sends"): READ,
    ("POST", "/api/sends/{send_id}/retry"): ACT,
    ("GET", "/api/associations"): READ,
    ("GET", "/api/audit"): ADMIN,
    # operator actions (actions.py, console_ops.py)
    ("POST", "/api/jobs/{job_id}/retry"): ACT,
    ("POST", "/api/studies/{study_uid}/reprocess"): ACT,
    ("POST", "/api/jobs/{job_id}/resend"): ACT,
    ("GET", "/console/"): READ,
    ("GET", "/console/studies/{study_uid}"): READ,
    ("POST", "/console/jobs/{job_id}/retry"): ACT,
    ("POST", "/console/studies/{study_uid}/reprocess"): ACT,
    ("POST", "/console/jobs/{job_id}/resend"): ACT,
    ("GET", "/console/status"): READ,
    # network configuration (config.py, console_network.py)
    ("GET", "/api/config/ae"): ADMIN,
    ("PUT", "/api/config/ae"): ADMIN,
    ("GET", "/api/config/sources"): ADMIN,
    ("POST", "/api/config/sources"): ADMIN,
    ("DELETE", "/api/config/sources/{ae_title}"): ADMIN,
    ("GET", "/api/config/destinations"): ADMIN,
    ("POST", "/api/config/destinations"): ADMIN,
    ("PUT", "/api/config/destinations/{name}"): ADMIN,
    ("DELETE", "/api/config/destinations/{name}"): ADMIN,
    ("POST", "/api/config/destinations/{name}/echo"): ADMIN,
    ("GET", "/console/network"): ADMIN,
    ("POST", "/console/network/ae"): ADMIN,
    ("POST", "/console/network/sources"): ADMIN,
    ("POST", "/console/network/sources/remove"): ADMIN,
    ("POST", "/console/network/destinations"): ADMIN,
    ("POST", "/console/network/destinations/{name}/remove"): ADMIN,
    ("POST", "/console/network/destinations/{name}/echo"): ADMIN,
    # routing rules (rules.py, console_network.py)
    ("GET", "/api/routes"): ADMIN,
    ("PUT", "/api/routes"): ADMIN,
    ("POST", "/api/routes/test"): ADMIN,
    ("GET", "/console/rules"): ADMIN,
    ("POST", "/console/rules"): ADMIN,
    ("GET", "/console/rules/test"): ADMIN,
    ("POST", "/console/rules/test"): ADMIN,
    # models (models.py, console_models.py) and the audit view
    ("GET", "/api/models"): READ,
    ("GET", "/api/models/{name}/{version}/card"): READ,
    ("POST", "/api/models/{name}/promote"): MODELS,
    ("POST", "/api/models/{name}/rollback"): MODELS,
    ("GET", "/console/models"): READ,
    ("GET", "/console/models/{name}/{version:int}"): READ,
    ("GET", "/console/models/{name}/{version:int}/figures/{figure}"): READ,
    ("GET", "/console/models/{name}/promote"): MODELS,
    ("GET", "/console/models/{name}/rollback"): MODELS,
    ("POST", "/console/models/{name}/promote"): MODELS,
    ("POST", "/console/models/{name}/rollback"): MODELS,
    ("GET", "/console/audit"): ADMIN,
    # plugins (plugins.py, console_plugins.py)
    ("GET", "/api/plugins"): PLUGINS,
    ("GET", "/api/plugins/{name}"): PLUGINS,
    ("POST", "/api/plugins/{name}"): PLUGINS,
    ("GET", "/console/plugins"): PLUGINS,
    ("GET", "/console/plugins/{name}"): PLUGINS,
    ("POST", "/console/plugins/{name}"): PLUGINS,
    # signing in, accounts, documentation (console_auth.py, web.py)
    ("GET", "/"): OPEN,  # a redirect to /console/
    ("GET", "/console/login"): OPEN,
    ("POST", "/console/login"): OPEN,
    ("POST", "/console/logout"): ANYONE,
    ("GET", "/console/account"): ANYONE,
    ("POST", "/console/account/tokens"): ANYONE,
    ("POST", "/console/account/tokens/{token_id}/revoke"): ANYONE,
    ("POST", "/console/account/password"): ANYONE,
    ("GET", "/console/users"): ADMIN,
    ("POST", "/console/users"): ADMIN,
    ("POST", "/console/users/{name}"): ADMIN,
    ("POST", "/console/users/tokens/{token_id}/revoke"): ADMIN,
    ("GET", "/openapi.json"): ANYONE,
    ("GET", "/docs"): ANYONE,
    ("GET", "/redoc"): ANYONE,
    ("GET", "/static"): OPEN,  # the stylesheet and vendored scripts (the login page needs them)
}

PAGE_PREFIXES = ("/console", "/docs", "/redoc")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    declared: frozenset[object] | None  # roles of its requires(...) with admin; OPEN; None: no check at all

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def url(self) -> str:
        if self.path == "/static":
            return "/static/console.css"
        return re.sub(r"\{[^}]+\}", "1", self.path)


def _checks(dependant: Dependant) -> list[RoleCheck]:
    found = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleCheck):
            found.append(dep.call)
        found += _checks(dep)
    return found


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the application answers, with what its route declares."""
    out = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            out.append(Endpoint("GET", route.path, OPEN))
            continue
        if not isinstance(route, APIRoute):
            out.append(Endpoint("?", str(context.path), None))
            continue
        checks = _checks(route.dependant)
        declared: frozenset[object] | None
        if not checks:
            declared = OPEN if route.path in {"/", "/console/login"} else None
        elif all(isinstance(c, OpenUnless) for c in checks):
            declared = OPEN_BY_DEFAULT
        else:
            declared = frozenset({A, *(r for c in checks for r in c.roles)})
        out.extend(Endpoint(method, str(context.path), declared) for method in sorted(route.methods))
    return out


def _names(roles: frozenset[object] | None) -> str:
    if roles is None:
        return "no role check"
    if roles == OPEN:
        return "OPEN"
    return "{" + ", ".join(sorted(r.name for r in roles if isinstance(r, Role))) + "}"


@dataclass
class Setup:
    client: TestClient
    tokens: dict[Role, str]
    ledger: Ledger


def _setup(tmp_path: Path, **http: object) -> Setup:
    config = config_from_mapping({"storage": {"data_dir": str(tmp_path)}, "http": http})
    ledger = Ledger(tmp_path / "aiws.db")
    network = NetworkStore(ledger)
    network.seed(config)
    tokens = {}
    for role in Role:
        accounts.create_account(ledger, role.value, role, "console-pass-1234")
        tokens[role] = accounts.issue_token(ledger, role.value)
    app = create_app(ApiContext(config, ledger, network, "admin-token-of-the-test", SenderSettings(),
                                routes=RouteStore(ledger, config, network)))
    return Setup(TestClient(app, follow_redirects=False, raise_server_exceptions=False), tokens, ledger)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = _setup(tmp_path)
    with s.client:
        yield s
    s.ledger.close()


def test_every_route_has_an_entry_that_matches_its_declaration(setup: Setup) -> None:
    found = endpoints(setup.client.app)  # type: ignore[arg-type]
    missing = [e for e in found if e.key not in POLICY]
    assert not missing, "routes without an entry in POLICY (tests/aiws/test_roles.py); add, as the route declares:\n" \
        + "\n".join(f"    ({e.method!r}, {e.path!r}): {_names(e.declared)}," for e in missing)
    unchecked = [e for e in found if e.declared is None]
    assert not unchecked, "routes that declare no role (add `principal: Annotated[Principal, requires(...)]`):\n" \
        + "\n".join(f"    {e.method} {e.path}" for e in unchecked)
    differ = [f"    {e.method} {e.path}: POLICY {_names(POLICY[e.key])}, route {_names(e.declared)}"
              for e in found if POLICY[e.key] != e.declared]
    assert not differ, "routes whose requires(...) differs from POLICY:\n" + "\n".join(differ)
    stale = sorted(set(POLICY) - {e.key for e in found})
    assert not stale, f"POLICY entries with no route (removed or renamed?): {stale}"


@pytest.mark.parametrize("who", [*Role, None], ids=[*(r.value for r in Role), "no-credentials"])
def test_each_role_on_every_route(setup: Setup, who: Role | None) -> None:
    headers = {} if who is None else {"Authorization": f"Bearer {setup.tokens[who]}"}
    wrong = []
    for e in endpoints(setup.client.app):  # type: ignore[arg-type]
        policy = POLICY.get(e.key)
        if policy is None:
            continue  # reported by the test above
        kwargs = {"json": {}} if e.method in ("POST", "PUT", "PATCH") else {}
        status = setup.client.request(e.method, e.url(), headers=headers, **kwargs).status_code  # type: ignore[arg-type]
        if policy == OPEN or (who is not None and who in policy):
            expected, ok = "allowed", status not in (401, 403)
        elif who is not None:
            expected, ok = "403", status == 403
        elif e.path.startswith(PAGE_PREFIXES):
            expected, ok = "303 to the login page", status == 303
        else:
            expected, ok = "401", status == 401
        if not ok:
            wrong.append(f"    {e.method} {e.path}: expected {expected}, got {status}")
    assert not wrong, f"{who.value if who else 'no credentials'}:\n" + "\n".join(wrong)


def test_the_configured_admin_token_is_an_admin(setup: Setup) -> None:
    headers = {"Authorization": "Bearer admin-token-of-the-test"}
    assert setup.client.get("/api/audit", headers=headers).status_code == 200
    assert setup.client.get("/console/users", headers=headers).status_code == 200
    assert setup.client.get("/api/audit", headers={"Authorization": "Bearer admin-token-of-the-tes"}).status_code == 401


def test_health_and_metrics_can_require_a_role(tmp_path: Path) -> None:
    s = _setup(tmp_path, open_health=False, open_metrics=False)
    with s.client:
        for path in ("/health", "/metrics"):
            assert s.client.get(path).status_code == 401, path
            clinician = {"Authorization": f"Bearer {s.tokens[C]}"}
            assert s.client.get(path, headers=clinician).status_code == 200, path
    s.ledger.close()
