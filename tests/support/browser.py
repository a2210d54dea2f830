"""A real browser for the page's tests: Debian's Chromium, headless, driven by its chromedriver
through Selenium (WebDriver). CI installs both (.ci/run) and sets TESTS_NEED_BROWSER, so
there a missing browser fails the tests; elsewhere (the README's test command on a machine
without them) the tests that drive a browser are skipped, each saying what to install. The
tests never download a browser (given chromedriver's path, Selenium does not run its manager;
SE_OFFLINE says so again).

Chromium runs as root on a closed network here: the flags are the ones that machine needs
(no sandbox, none of the background connections to Google's hosts). The driver and every
browser process it starts run in a session of their own, and the whole group is killed at
the end however the test ends.
"""

import os
import shutil
import signal
import time
from contextlib import contextmanager

import pytest

# Read at import (collection), before each test's fixtures clear the environment of WSCTL_/AWS_ settings.
NEED_BROWSER = bool(os.environ.get("TESTS_NEED_BROWSER"))
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio")


def executables() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        why = ("the page's browser tests need Debian's chromium and chromium-driver (apt-get install chromium "
               "chromium-driver; .ci/run installs them)")
        if NEED_BROWSER:
            pytest.fail(why)
        pytest.skip(why)
    return browser, driver


@contextmanager
def chromium(profile_dir, width: int = 1280, height: int = 1000, dark: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    browser, driver_path = executables()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=%s" % profile_dir)
    options.add_argument("--window-size=%d,%d" % (width, height))
    service = Service(executable_path=driver_path, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        if dark:
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                   {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            _kill_group(service.process)


def _kill_group(process) -> None:
    """chromedriver and the browser it started: their own process group, killed if still there."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()



def page_url(emulator) -> str:
    """The page's URL, secret included, from the line `wsctl local up` prints under its banner."""
    for line in emulator.output().splitlines():
        if line.startswith("page: "):
            return line.split()[1]
    raise RuntimeError("the emulator printed no page URL:\n" + emulator.output())

def wait_until(driver, predicate, timeout: float = 15.0, what: str = ""):
    """Poll the page until `predicate(driver)` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate(driver)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the page never showed %s; it shows:\n%s" % (
                what, driver.find_element("tag name", "body").text[:3000]))
        time.sleep(0.1)
