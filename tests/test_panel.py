"""The web panel in a real headless Chromium (Debian's chromium + chromium-driver, Selenium),
against the real daemon, real Codex and the scripted model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from codex_sessions.testing.sandbox import make_git_project

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "doc" / "panel.png"


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert browser and driver, "Chromium is missing: scripts/setup installs chromium and chromium-driver"
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary, driver_path = chromium()
    options = Options()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                 "--window-size=1000,520", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


class Api:
    """The API as a voice assistant would call it (plain HTTP with the token)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


def row(driver: webdriver.Chrome, sid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'li.session[data-id="{sid}"]')


def wait(driver: webdriver.Chrome, check: Any, timeout: float = 60) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: check(d))


def status_of(driver: webdriver.Chrome, sid: str) -> str | None:
    found = driver.find_elements(By.CSS_SELECTOR, f'li.session[data-id="{sid}"]')
    return found[0].get_attribute("data-status") if found else None


def test_the_panel_approves_a_session_and_shows_its_summary(browser, http_daemon, tmp_path):
    api = Api(http_daemon.url, http_daemon.token)
    project = make_git_project(tmp_path / "webshop")
    link = subprocess.run([sys.executable, "-m", "codex_sessions", "panel"],
                          env=http_daemon.world.env(), capture_output=True, text=True, timeout=60)
    assert link.returncode == 0, link.stderr
    browser.get(link.stdout.strip())
    wait(browser, lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live")
    assert browser.current_url == http_daemon.url + "/"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script sees it

    done = api("POST", "/api/sessions", {"project": str(project), "name": "tests",
                                         "prompt": "run: echo ok > ok.txt",
                                         "title": "make the test suite pass"})["session"]
    wait(browser, lambda d: status_of(d, done["id"]) == "idle"
         and row(d, done["id"]).find_element(By.CLASS_NAME, "headline").text.startswith("done: "))
    long = api("POST", "/api/sessions", {"project": str(project), "name": "refactor",
                                         "prompt": "slow: 40"})["session"]
    asked = api("POST", "/api/sessions", {"project": str(project), "name": "deploy",
                                          "prompt": "run-approved: touch approved.txt"})["session"]

    # it appears, goes waiting, pinned on top with what it waits for and the buttons
    wait(browser, lambda d: status_of(d, asked["id"]) == "waiting")
    waiting = row(browser, asked["id"])
    assert browser.find_elements(By.CSS_SELECTOR, "li.session")[0] == waiting
    assert waiting.find_element(By.CSS_SELECTOR, ".request .what").text == "run: touch approved.txt"
    assert waiting.find_element(By.CLASS_NAME, "headline").text == "waits: touch approved.txt"
    wait(browser, lambda d: status_of(d, long["id"]) == "running"  # its clock ticks
         and row(d, long["id"]).find_element(By.CLASS_NAME, "elapsed").text in ("2s", "3s", "4s"))
    order = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "li.session")]
    assert order == [asked["id"], long["id"], done["id"]]
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    assert http_daemon.token not in browser.page_source

    # approved with the page's button, it finishes, and its summary shows
    waiting.find_element(By.CSS_SELECTOR, ".request .accept").click()
    wait(browser, lambda d: status_of(d, asked["id"]) == "idle")
    line = row(browser, asked["id"]).find_element(By.CLASS_NAME, "headline").text
    assert line.startswith("done: ")
    assert (project / "approved.txt").exists()
    got = api("GET", f"/api/sessions/{asked['id']}")["session"]
    assert line == got["headline"] and got["report"]["verified"] == ["touch approved.txt (exit 0)"]

    # "read report" shows the report's text (and speaks it where the browser can)
    finished = row(browser, asked["id"])
    finished.find_element(By.CLASS_NAME, "read").click()
    report = finished.find_element(By.CLASS_NAME, "report")
    wait(browser, lambda d: report.is_displayed() and report.text.startswith("Session: deploy"))
    assert "Status: done" in report.text and "Verified: touch approved.txt (exit 0)" in report.text

    # "continue from this": the next prompt goes to that session
    first = row(browser, done["id"])
    first.find_element(By.CLASS_NAME, "continue").click()
    box = first.find_element(By.CSS_SELECTOR, ".composer textarea")
    box.send_keys("say: The second turn is done too.")
    first.find_element(By.CSS_SELECTOR, ".composer button").click()
    wait(browser, lambda d: status_of(d, done["id"]) == "idle" and "second turn is done" in
         row(d, done["id"]).find_element(By.CLASS_NAME, "headline").text)
    assert api("GET", f"/api/sessions/{done['id']}")["session"]["turns"] == 2

    # the running one is stopped with its button
    row(browser, long["id"]).find_element(By.CLASS_NAME, "cancel").click()
    wait(browser, lambda d: status_of(d, long["id"]) == "idle", 20)
    assert not any(e.text for e in browser.find_elements(By.CLASS_NAME, "problem"))
    for sid in (done["id"], long["id"], asked["id"]):
        api("POST", f"/api/sessions/{sid}/kill")
    wait(browser, lambda d: status_of(d, done["id"]) is None)  # stopped: off the default list


def test_a_browser_without_the_login_is_told_how(browser, http_daemon):
    browser.delete_all_cookies()
    browser.get(http_daemon.url + "/")
    assert "codex-sessions panel --open" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(http_daemon.url + "/login?code=guessed")
    assert "does not work" in browser.find_element(By.TAG_NAME, "body").text
