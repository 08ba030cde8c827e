"""Fixtures of the console tests: a real service and a real browser (helpers in ``console_helpers.py``).

* ``console``: a running ``aiws serve`` (subprocess, its own data_dir, free ports, no workers) with an
  account per role (name = role, password ``console-pass-1234``) and an API token each: ``.base_url``,
  ``.data_dir``, ``.config_path``, ``.dicom_port``, ``.admin_token``, ``.token(role)``, ``.headers(role)``,
  ``.stop()``. ONE per test module (starting one costs seconds): a test signs in itself, names what it creates
  so that no other test of the module meets it, and does not rely on what another test left.
* ``browser``: Selenium with headless Debian Chromium and /usr/bin/chromedriver, window 1400x1000; tests that
  use it are skipped, saying why, only where Chromium or chromedriver is not installed. One Chromium serves
  the session; after each test it is made new again (``console_helpers.reset_browser``: no cookies, cache or
  storage, a blank page, its console log drained); one that no longer answers is replaced.
* ``login(browser, console, role)`` and ``screenshot(browser, name)`` (PNG under tests/artifacts/console/):
  fixtures that return the functions of ``console_helpers`` (importable too: ``from console_helpers import login``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import Console, browser_missing, new_browser, reset_browser, start_console
from console_helpers import login as _login
from console_helpers import screenshot as _screenshot


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    service = start_console(tmp_path_factory.mktemp("console"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def _chromium() -> Iterator[list[Any]]:
    """The session's Chromium (none yet, or one); quit at the end."""
    held: list[Any] = []
    try:
        yield held
    finally:
        for driver in held:
            driver.quit()


@pytest.fixture
def browser(_chromium: list[Any]) -> Iterator[Any]:
    from selenium.common.exceptions import WebDriverException

    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    if not _chromium:
        _chromium.append(new_browser())
    driver = _chromium[0]
    try:
        yield driver
    finally:
        try:
            reset_browser(driver)
        except (WebDriverException, RuntimeError):  # not made new: the next test gets another Chromium
            _chromium.clear()
            driver.quit()


@pytest.fixture
def login() -> Callable[..., None]:
    return _login


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    return _screenshot
