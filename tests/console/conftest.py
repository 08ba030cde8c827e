"""Fixtures of the console tests: a real service and a real browser (helpers in ``console_helpers.py``).

* ``console``: a running ``aiws serve`` (subprocess, its own data_dir, free ports, no workers) with an
  account per role (name = role, password ``console-pass-1234``) and an API token each: ``.base_url``,
  ``.data_dir``, ``.config_path``, ``.dicom_port``, ``.admin_token``, ``.token(role)``, ``.headers(role)``,
  ``.stop()``.
* ``browser``: Selenium with headless Debian Chromium and /usr/bin/chromedriver, window 1400x1000; tests that
  use it are skipped, saying why, only where Chromium or chromedriver is not installed.
* ``login(browser, console, role)`` and ``screenshot(browser, name)`` (PNG under tests/artifacts/console/):
  fixtures that return the functions of ``console_helpers`` (importable too: ``from console_helpers import login``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import Console, browser_missing, new_browser, start_console
from console_helpers import login as _login
from console_helpers import screenshot as _screenshot


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    service = start_console(tmp_path)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    driver = new_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def login() -> Callable[..., None]:
    return _login


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    return _screenshot
