"""Console pages /console/models and /console/audit of a real ``aiws serve`` on a COPY of triton_repo.

HTTP checks with API tokens (pages, forms, roles, filters, pagination, the chain check) and, in a real
headless Chromium, promoting a version from the page and finding the promotion on the audit page.
"""
from __future__ import annotations

import re
import shutil
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from console_helpers import Console, click_to_next_page, start_console

from aiws.ledger import Ledger
from models.runtime import ModelRepository

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.network

def _png(path: Path, width: int = 4, height: int = 3) -> None:
    """A tiny valid PNG (grey), written with zlib: a plot shipped beside a model card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes([128] * width) for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Service:
    """The console fixture's service (AUTH's ``start_console``) on a copy of triton_repo, with request helpers."""

    def __init__(self, console: Console, repo: Path) -> None:
        self.console, self.repo = console, repo
        self.base_url = console.base_url
        self.data_dir = console.data_dir

    def get(self, path: str, role: str | None = "admin", **kw: object) -> httpx.Response:
        headers = self.console.headers(role) if role else {}
        return httpx.get(f"{self.base_url}{path}", headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def post(self, path: str, role: str, data: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", headers=self.console.headers(role), data=data, timeout=60)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("console_models")
    repo = tmp / "triton_repo"
    shutil.copytree(ROOT / "triton_repo", repo)
    _png(repo / "lung_nodules" / "6" / "froc.png")
    console = start_console(tmp, env={"AIWS_MODEL_REPOSITORY": str(repo)})
    yield Service(console, repo)
    console.stop()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_models_page_lists_pipelines_versions_and_the_active_one(service: Service) -> None:
    page = service.get("/console/models", "radiologist")
    assert page.status_code == 200
    html = page.text
    for pipeline in ("lung_nodules", "mammography", "coronary_ct", "cardiac_mri"):
        assert f'id="pipeline-{pipeline}"' in html
    assert re.search(r'id="active-lung_nodules">6<', html)
    assert 'id="promote-lung_nodules-5"' not in html  # a radiologist sees, does not change
    html = service.get("/console/models", "ml-engineer").text
    assert 'id="promote-lung_nodules-5"' in html and 'id="promote-lung_nodules-6"' not in html  # 6 is active
    assert service.get("/console/models", "clinician").status_code == 403
    assert service.get("/console/models", None, follow_redirects=False).headers["location"].startswith(
        "/console/login?next=/console/models")


def test_card_page_renders_the_card_figures_and_plots(service: Service) -> None:
    page = service.get("/console/models/lung_nodules/6", "radiologist")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Model card: lung_nodules version 6</h1>" in html  # markdown rendered
    assert re.search(r"<td[^>]*>validation\.sensitivity_5mm</td><td>0\.9048</td>", html)  # figures table
    assert '<img src="/console/models/lung_nodules/6/figures/froc.png"' in html
    png = service.get("/console/models/lung_nodules/6/figures/froc.png", "radiologist")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == (service.repo / "lung_nodules" / "6" / "froc.png").read_bytes()
    assert service.get("/console/models/lung_nodules/6/figures/other.png", "radiologist").status_code == 404
    assert service.get("/console/models/lung_nodules/99", "radiologist").status_code == 404


def test_promote_form_confirms_then_changes_and_audits(service: Service) -> None:
    confirm = service.get("/console/models/mammo_detector/promote?version=1", "ml-engineer")
    assert confirm.status_code == 200 and 'id="confirm-promote"' in confirm.text
    assert 'name="csrf_token"' in confirm.text
    done = service.post("/console/models/lung_nodules/promote", "ml-engineer", {"version": "4"})
    assert done.status_code == 303 and done.headers["location"] == "/console/models"
    assert ModelRepository(service.repo).resolve_version("lung_nodules") == 4
    assert service.post("/console/models/lung_nodules/promote", "radiologist", {"version": "5"}).status_code == 403
    refused = service.post("/console/models/lung_nodules/promote", "ml-engineer", {"version": "42"})
    assert refused.status_code == 303  # back to the page with the reason shown once
    shown = service.get("/console/models", "ml-engineer", cookies={"aiws_flash": refused.cookies["aiws_flash"]})
    assert "version 42 is not in the repository" in _text(shown.text.split('id="flash"', 1)[1].split("</p>")[0])
    back = service.post("/console/models/lung_nodules/rollback", "ml-engineer", {})
    assert back.status_code == 303
    assert ModelRepository(service.repo).resolve_version("lung_nodules") == 6

    audit = service.get("/console/audit?action=model+promoted", "admin")
    assert audit.status_code == 200
    text = _text(audit.text)
    assert "Chain intact" in text
    assert re.search(r"user:ml-engineer model promoted .*\"model\": \"lung_nodules\".*\"new_version\": 4", text)
    assert "model rolled back" not in _text(audit.text.split('id="audit"', 1)[1])  # filtered by action
    assert service.get("/console/audit", "ml-engineer").status_code == 403


def test_promote_and_roll_back_in_the_browser_then_find_it_in_the_audit(  # type: ignore[no-untyped-def]
        service: Service, browser, login, screenshot) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def active() -> str:
        return str(browser.find_element(By.ID, "active-lung_nodules").text)

    def click(element_id: str) -> None:
        click_to_next_page(browser, browser.find_element(By.ID, element_id))

    login(browser, service.console, "ml-engineer")
    browser.get(f"{service.base_url}/console/models")
    assert active() == "6"
    screenshot(browser, "models")
    browser.find_element(By.ID, "promote-lung_nodules-3").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "confirm-promote")))
    assert browser.find_element(By.ID, "confirm-current").text == "6"
    screenshot(browser, "models_confirm_promote")
    click("confirm-promote")
    assert browser.current_url.endswith("/console/models")
    assert "active version 6 -> 3" in browser.find_element(By.ID, "flash").text
    assert active() == "3"
    assert ModelRepository(service.repo).resolve_version("lung_nodules") == 3  # what the next job runs
    screenshot(browser, "models_promoted")

    browser.find_element(By.ID, "card-lung_nodules-6").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "card")))
    assert "Model card: lung_nodules version 6" in browser.find_element(By.CSS_SELECTOR, "#card h1").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#figures tbody tr")) > 10
    plot = browser.find_element(By.CSS_SELECTOR, "#plots img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) == 4
    screenshot(browser, "model_card")

    browser.get(f"{service.base_url}/console/models")
    browser.find_element(By.ID, "rollback-lung_nodules").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "confirm-rollback")))
    click("confirm-rollback")
    assert active() == "6" and "rolled back" in browser.find_element(By.ID, "flash").text

    browser.delete_all_cookies()
    login(browser, service.console, "admin")
    browser.get(f"{service.base_url}/console/audit")
    assert browser.find_elements(By.ID, "chain-ok")
    Select(browser.find_element(By.ID, "filter-action")).select_by_visible_text("model promoted")
    click("filter-apply")
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert rows and all("model promoted" in r for r in rows)
    assert any("user:ml-engineer" in r and '"new_version": 3' in r and '"old_version": 6' in r for r in rows)
    screenshot(browser, "audit_model_promoted")


def test_audit_filters_paginate_and_show_a_broken_chain(service: Service) -> None:
    ledger = Ledger(service.data_dir / "aiws.db")
    for i in range(120):
        ledger.audit("user:filler", "test filler", {"n": i})
    ledger.close()
    first = service.get("/console/audit?actor=user:filler", "admin").text
    assert "120 rows; page 1 of 3" in _text(first)
    assert '"n": 119' in _text(first) and '"n": 69' not in _text(first)  # newest first, 50 a page
    third = service.get("/console/audit?actor=user%3Afiller&page=3", "admin").text
    assert '"n": 19' in _text(third) and '"n": 20' not in _text(third) and 'id="page-next"' not in third
    assert 'href="/console/audit?actor=user%3Afiller&amp;page=2"' in third
    future = service.get("/console/audit?since=2999-01-01T00:00", "admin").text
    assert "0 rows" in _text(future)
    bad = service.get("/console/audit?since=yesterday", "admin")
    assert bad.status_code == 422 and "since" in _text(bad.text)

    con = sqlite3.connect(service.data_dir / "aiws.db")
    target = con.execute("SELECT id FROM audit WHERE actor='user:filler' ORDER BY id LIMIT 1").fetchone()[0]
    con.execute("DROP TRIGGER audit_no_update")
    con.execute("UPDATE audit SET detail='{\"n\": -1}' WHERE id=?", (target,))
    con.commit()
    con.close()
    broken = _text(service.get("/console/audit", "admin").text)
    assert f"Chain broken at row {target}" in broken and "edited" in broken
