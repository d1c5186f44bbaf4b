"""The web console in a real browser: Debian's headless chromium, driven by Selenium, against the control
plane's app served by uvicorn on a loopback port. No Ray: the control plane is the unit tests' (a real SQLite
registry and flow checkpoints, the hub in-process, Serve's replica states stood in), with two functions, their
sampled metrics and log lines, and a finished flow run (tests/unit/console_site.py).

Screenshots go to $FN_TEST_ARTIFACTS, else tests/artifacts/ (git ignores it). Without chromium, chromedriver or
selenium the test is skipped, except in CI (CI=true), where it fails: there scripts/test installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from fnplatform.control.api import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the unit tests' site builder
from unit.console_site import Site, build_site, patch_serve

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 15.0


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.access(path, os.X_OK) or shutil.which(Path(path).name)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("FN_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    patch_serve(monkeypatch)
    return build_site(tmp_path)


@pytest.fixture
def console_url(site: Site) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(site.plane, history=site.history), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(WAIT_S)


@pytest.fixture
def driver() -> Iterator[Any]:
    problem = _missing()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the console's browser test must run in CI: {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def _wait(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def _sign_in(driver: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.NAME, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form[action='/console/sign-in'] button").click()


def test_sign_in_see_a_function_and_its_chart_and_a_flow_runs_timeline(site: Site, console_url: str, driver: Any,
                                                                       artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(console_url + "/")
    _wait(driver, "input[name='key']")
    _sign_in(driver, "fn_not_a_key")
    refused = _wait(driver, "p.refused")
    assert refused.text == "that key was refused"
    assert driver.get_cookies() == []
    driver.save_screenshot(str(artifacts / "console-1-wrong-key.png"))

    _sign_in(driver, site.keys["admin"])
    row = _wait(driver, "tr#function-add")
    assert "4.00/s" in row.text and "20.0 ms" in row.text
    chart = _wait(driver, "tr#function-add div.chart[data-drawn='true'] svg.chart-svg polyline")  # drawn by console.js
    assert chart.get_attribute("points")
    (cookie,) = driver.get_cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("fn_console", True, "Strict")
    assert driver.execute_script("return document.cookie") == ""  # HttpOnly: no script reads the key
    assert site.keys["admin"] not in driver.current_url
    driver.save_screenshot(str(artifacts / "console-2-functions.png"))

    driver.find_element(By.LINK_TEXT, "add").click()
    _wait(driver, "div.chart.wide[data-drawn='true'] svg.chart-svg")
    assert "req0001" in driver.find_element(By.CSS_SELECTOR, "table.calls").text
    driver.save_screenshot(str(artifacts / "console-3-function.png"))
    # where add's calls go, drawn: the stable and canary parts of the split at 90 % and 10 % of its width
    split = driver.find_element(By.CSS_SELECTOR, "svg.split")
    driver.execute_script("arguments[0].scrollIntoView()", split)
    parts = [r.rect["width"] for r in split.find_elements(By.CSS_SELECTOR, "rect")]
    assert len(parts) == 2 and abs(parts[0] / split.rect["width"] - 0.9) < 0.02, (parts, split.rect)
    assert "a canary by hand" in driver.find_element(By.CSS_SELECTOR, "table.history").text
    driver.save_screenshot(str(artifacts / "console-3-traffic.png"))

    driver.find_element(By.LINK_TEXT, "Flows").click()
    driver.find_element(By.LINK_TEXT, site.run_id).click()
    bars = _wait(driver, "svg#gantt rect.work")
    assert bars.is_displayed()
    steps = driver.find_elements(By.CSS_SELECTOR, "svg#gantt rect.work")
    assert len(steps) == 2 and all(float(s.get_attribute("width")) > 1 for s in steps)
    assert "not measured" in driver.find_element(By.CSS_SELECTOR, "table.steps").text
    driver.save_screenshot(str(artifacts / "console-4-run-timeline.png"))

    expected = "/console/sign-in - Failed to load resource: the server responded with a status of 401"  # the wrong key
    problems = [entry["message"] for entry in driver.get_log("browser")
                if entry["level"] == "SEVERE" and expected not in entry["message"]]
    assert not problems, problems  # no script error, nothing refused by the Content-Security-Policy, no 404

    driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
    _wait(driver, "input[name='key']")
    assert driver.get_cookies() == []
