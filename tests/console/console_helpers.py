"""Helpers of the console tests (fixtures in ``conftest.py``): a real ``aiws serve`` with an account per role,
a headless Chromium, signing in, screenshots kept under ``tests/artifacts/console/`` (CI keeps them)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiws.api.accounts import create_account, issue_token
from aiws.api.auth import Role
from aiws.ledger import Ledger
from peers import AiwsProcess

PASSWORD = "console-pass-1234"
ADMIN_TOKEN = "test-token"  # what peers.AiwsProcess sets as AIWS_ADMIN_TOKEN
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "console"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
WINDOW = (1400, 1000)

CONFIG = """
[dicom]
host = "127.0.0.1"
port = {dicom_port}
[http]
host = "127.0.0.1"
port = {http_port}
[storage]
data_dir = "{data_dir}"
min_free_mb = 1
"""


@dataclass
class Console:
    """A running ``aiws serve`` with one account per role (account name = role name, password :data:`PASSWORD`)."""

    proc: AiwsProcess
    tokens: dict[Role, str] = field(default_factory=dict)
    password: str = PASSWORD
    admin_token: str = ADMIN_TOKEN

    @property
    def base_url(self) -> str:
        return self.proc.url

    @property
    def data_dir(self) -> Path:
        return self.proc.data_dir

    @property
    def config_path(self) -> Path:
        return self.proc.workdir / "aiws.toml"

    @property
    def dicom_port(self) -> int:
        return self.proc.dicom_port

    def token(self, role: Role | str) -> str:
        """An API token of the account named after *role*, acting with that role."""
        return self.tokens[Role(role)]

    def headers(self, role: Role | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}

    def stop(self) -> None:
        self.proc.stop()


def start_console(workdir: Path, config_text: str = CONFIG, env: dict[str, str] | None = None) -> Console:
    """Create the accounts and tokens in the ledger of *workdir*/var, then start the service on free ports.
    *config_text* is formatted with ``dicom_port``, ``http_port`` and ``data_dir``."""
    proc = AiwsProcess(workdir, config_text, env={"AIWS_WORKERS": "0", **(env or {})})
    ledger = Ledger(proc.data_dir / "aiws.db")
    tokens = {}
    for role in Role:
        create_account(ledger, role.value, role, PASSWORD, actor="test")
        tokens[role] = issue_token(ledger, role.value, label="console tests", actor="test")
    ledger.close()
    return Console(proc.start(), tokens)


def chromium_binary() -> str | None:
    return next((p for p in CHROMIUM_PATHS if Path(p).exists()), None)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if chromium_binary() is None:
        return "Chromium is not installed (Debian package chromium; make setup installs it)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (Debian package chromium-driver; make setup installs it)"
    return None


def new_browser() -> Any:
    """Headless Chromium driven by Selenium through the Debian chromedriver, window 1400x1000."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary() or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(60)
    return driver


def reset_browser(driver: Any) -> None:
    """Make a browser kept between tests as a new one: no cookies (of any port on 127.0.0.1), no cache, no
    storage of the page it was on, a blank page and no browser-console messages left over (``get_log`` drains).

    Raises:
        selenium.common.exceptions.WebDriverException: the browser no longer answers (the caller starts another).
    """
    url = str(driver.current_url)
    if url.startswith("http"):
        origin = "/".join(url.split("/")[:3])
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get("about:blank")
    driver.get_log("browser")
    if driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]:
        raise RuntimeError("the browser kept cookies after Network.clearBrowserCookies")


def login(browser: Any, console: Console, role: Role | str, password: str | None = None) -> None:
    """Sign in through the login form as the account named after *role*; waits for the page after it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{console.base_url}/console/login")
    browser.find_element(By.ID, "username").send_keys(Role(role).value)
    browser.find_element(By.ID, "password").send_keys(password or console.password)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#who, #login-error")))


def click_to_next_page(browser: Any, element: Any) -> None:
    """Click *element* and wait until the browser has left the page it was on (a form post or a link).

    While the next document commits, Chromium can answer a call on the old page's element with "Node with
    given id does not belong to the document" (a plain WebDriverException) instead of a stale-element error:
    that is the navigation happening, so the wait polls again rather than failing."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(ec.staleness_of(page))


def screenshot(browser: Any, name: str) -> Path:
    """Save the window as ``tests/artifacts/console/<name>.png`` (kept by CI); returns the path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
