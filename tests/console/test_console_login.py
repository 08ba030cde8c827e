"""Signing in and out of the console in a real headless Chromium against a real ``aiws serve``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_helpers import Console
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from aiws.api.auth import Role

pytestmark = pytest.mark.network


def _nav(browser: Any) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")]


def test_login_shows_the_navigation_of_the_role_then_logout(
        console: Console, browser: Any, login: Callable[..., None], screenshot: Callable[[Any, str], Path]) -> None:
    browser.get(f"{console.base_url}/console/account")
    assert "/console/login?next=/console/account" in browser.current_url  # no session: to the login page
    screenshot(browser, "login-form")
    login(browser, console, Role.ADMIN)
    assert browser.find_element(By.ID, "who").text == "admin (admin)"
    nav = _nav(browser)
    assert {"Dashboard", "Network", "Rules", "Models", "Plugins", "Audit", "Users", "Account"} <= set(nav)
    assert browser.find_element(By.ID, "nav-dashboard").get_attribute("href").endswith("/console/")
    cookie = browser.get_cookie("aiws_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.get(f"{console.base_url}/console/users")
    assert browser.find_element(By.ID, "user-clinician")  # the accounts made by the fixture are listed
    screenshot(browser, "users-admin")

    browser.find_element(By.ID, "logout").click()
    WebDriverWait(browser, 30).until(ec.url_contains("/console/login"))  # the click's navigation, then the page
    flash = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "flash")))
    assert flash.text == "Signed out."
    browser.get(f"{console.base_url}/console/account")
    assert "/console/login" in browser.current_url  # the session is gone


def test_clinician_sees_only_plugins_and_account(console: Console, browser: Any, login: Callable[..., None]) -> None:
    login(browser, console, Role.CLINICIAN)
    assert _nav(browser)[:1] == ["Plugins"] and "Users" not in _nav(browser) and "Dashboard" not in _nav(browser)
    browser.get(f"{console.base_url}/console/account")
    browser.find_element(By.ID, "token-label").send_keys("sepsis script")
    browser.find_element(By.ID, "create-token").click()
    token = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "new-token"))).text
    assert token.startswith("aiws_")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{console.base_url}/api/plugins", headers=headers, timeout=30).status_code == 200
    assert httpx.get(f"{console.base_url}/api/studies", headers=headers, timeout=30).status_code == 403


def test_wrong_password_shows_an_error(console: Console, browser: Any, login: Callable[..., None],
                                       screenshot: Callable[[Any, str], Path]) -> None:
    login(browser, console, Role.RADIOLOGIST, password="not-the-password")
    assert browser.find_element(By.ID, "login-error").text == "Wrong account name or password."
    assert browser.get_cookie("aiws_session") is None
    screenshot(browser, "login-wrong-password")
    login(browser, console, Role.RADIOLOGIST)
    assert browser.find_element(By.ID, "who").text == "radiologist (radiologist)"


def test_docs_and_redoc_load_offline_from_vendored_assets(console: Console, browser: Any,
                                                          login: Callable[..., None],
                                                          screenshot: Callable[[Any, str], Path]) -> None:
    login(browser, console, Role.ML_ENGINEER)
    browser.get(f"{console.base_url}/docs")
    WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-tag")))
    tags = {e.text.split("\n")[0] for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-tag")}
    assert {"studies", "plugins"} <= tags
    screenshot(browser, "docs-swagger")
    browser.get(f"{console.base_url}/redoc")
    WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-section-id]")))
    screenshot(browser, "docs-redoc")
    # everything the pages need is served here: no asset of ours failed (ReDoc's "by Redocly" logo, an image on
    # another site, is what the Content-Security-Policy blocks, as it blocks any other origin)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in errors if "/static/" in m or "/openapi.json" in m], errors
    assert all("127.0.0.1" in m.split(" ")[0] or "blocked" in m for m in errors), errors
