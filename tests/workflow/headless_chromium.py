"""Debian's Chromium and chromedriver, driven by selenium, for tests that look at a page as a person does.

Nothing is downloaded at run time: the browser and its driver are Debian's packages (installed
with apt-get, as root, where they are missing), and selenium is handed the driver's path, so its
own driver manager never runs. This module imports nothing outside the standard library at load
time, so `.ci/run` can read APT_PACKAGES with the system Python.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.workflow import debian

APT_PACKAGES = ("chromium", "chromium-driver")
BROWSER, DRIVER = "chromium", "chromedriver"
# Headless as root in a container, on a machine whose network is closed: without the background
# networking, component update and sync switches Chromium keeps opening connections that are refused.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
WAIT_S = 90            # one wait in the browser: a first page may load a whole application bundle
POLL_S = 0.25


def missing_binaries() -> list[str]:
    return debian.missing((BROWSER, DRIVER))


def unavailable_reason() -> str | None:
    """Why no browser can be had here (it is missing, and no root or no apt-get to install it), or None."""
    missing = missing_binaries()
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"no root to apt-get install {', '.join(APT_PACKAGES)} (missing: {', '.join(missing)})"
    if shutil.which("apt-get") is None:
        return f"no apt-get to install Debian's {', '.join(APT_PACKAGES)} (missing: {', '.join(missing)})"
    return None


def install(timeout_s: int = 900) -> None:
    debian.apt_install(APT_PACKAGES, (BROWSER, DRIVER), timeout_s)


@contextlib.contextmanager
def browser(profile_dir: Path, driver_log: Path, width: int = 1600, height: int = 900,
            page_load_timeout_s: int = 60) -> Iterator[Any]:
    """A selenium WebDriver on a fresh headless Chromium profile in `profile_dir`; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(BROWSER) or BROWSER
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which(DRIVER), log_output=str(driver_log))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(page_load_timeout_s)
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, what: str, condition: Callable[[Any], Any], timeout_s: float = WAIT_S,
             detail: Callable[[Any], str] = lambda d: "") -> Any:
    """WebDriverWait on `condition`; a timeout names what was awaited (and `detail` of what was seen)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=POLL_S).until(condition)
    except TimeoutException:
        raise AssertionError(f"waited {timeout_s} s for {what}; {detail(driver)} at {driver.current_url}") from None
