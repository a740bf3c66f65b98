"""The security console in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): an operator's key cannot open it; an auditor sees jobs arrive in the
live feed, sees a probing run raise the probing alert, and suspends the operator from the
console, after which the operator's next job is refused.

Set ``BLINDGATE_SCREENSHOTS=DIR`` to keep screenshots of each step."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import PROBE, SQL, Watched

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, DRIVER) if not shutil.which(p)]
    if missing:
        message = f"Chromium for the console test is missing: {missing} (scripts/system-packages)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    _need_browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1400,2000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # an element not there yet
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def shot(driver: Any, name: str) -> None:
    folder = os.environ.get("BLINDGATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def sign_in(driver: Any, url: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console")
    field = wait_for(lambda: driver.find_element(By.ID, "api_key"), what="the sign-in form")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "sign-in").click()


def test_console_in_chromium(watched: Watched, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    w, d = watched, browser
    # an operator's key does not open it
    sign_in(d, w.url, w.operator_key)
    error = wait_for(lambda: d.find_element(By.ID, "login-error").text, what="the refusal message")
    assert "Only an auditor" in error
    assert d.get_cookies() == []
    shot(d, "1-operator-refused")

    # the auditor signs in: HttpOnly, SameSite=Strict session cookie
    sign_in(d, w.url, w.auditor_key)
    wait_for(lambda: "·" in d.find_element(By.ID, "who").text, what="the console")
    (cookie,) = d.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert d.execute_script("return document.cookie") == ""

    # the demo's jobs arrive in the live feed
    job = w.wait(w.submit(SQL, epsilon=0.5)["id"])
    assert job["state"] == "succeeded"
    wait_for(
        lambda: any(
            "job.release" in row.text for row in d.find_elements(By.CSS_SELECTOR, "#feed tbody tr")
        ),
        what="the job's release in the feed",
    )
    assert d.find_elements(By.CSS_SELECTOR, "#feed tbody tr.new")  # arrived while watching
    shot(d, "2-jobs-arriving")

    # a probing run: many denied queries from one operator
    for _ in range(22):
        assert w.submit(PROBE)["state"] == "denied"
    alert = wait_for(
        lambda: d.find_element(By.CSS_SELECTOR, 'li[data-alert="BlindgateProbingDenials"]'),
        timeout=30,
        what="the probing alert",
    )
    assert w.fed.operator.org_id in alert.text
    # the feed filters by decision and principal
    d.find_element(By.ID, "f-principal").send_keys(w.fed.operator.principal_id)
    d.find_element(By.ID, "f-decision").send_keys("deny")
    d.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait_for(
        lambda: (
            (rows := d.find_elements(By.CSS_SELECTOR, "#feed tbody tr"))
            and all("deny" in r.text for r in rows)
            and len(rows) >= 22
        ),
        what="the filtered feed",
    )
    shot(d, "3-probing-alert")

    # the auditor suspends the operator from the console
    org = w.fed.operator.org_id
    d.find_element(By.CSS_SELECTOR, f'.op[data-operator="{org}"] button').click()
    assert d.find_element(By.ID, "brake-target").get_attribute("value") == org
    d.find_element(By.ID, "brake-reason").send_keys("incident 2026-117: probing")
    d.find_element(By.ID, "brake-submit").click()
    result = wait_for(
        lambda: "suspended org" in (t := d.find_element(By.ID, "brake-result").text) and t,
        what="the suspension",
    )
    assert org in result
    wait_for(
        lambda: d.find_elements(By.CSS_SELECTOR, "#suspensions li[data-suspension]"),
        what="the suspension in force",
    )
    shot(d, "4-suspended")
    refused = w.submit(SQL, epsilon=0.5)
    assert refused["state"] == "denied"
    assert refused["decision"]["reasons"][0]["code"] == "operator_suspended"

    # a state-changing call without the session's CSRF token is refused, even same-origin
    status = d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/console/api/suspensions', {method: 'POST', credentials: 'same-origin',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({kind: 'org', target_id: arguments[0], reason: 'x'})})
          .then(r => done(r.status));""",
        org,
    )
    assert status == 403
    # every resource the page loaded came from the gateway itself
    resources = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(w.url) for r in resources), resources

    # the API docs page too
    d.get(f"{w.url}/docs")
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, ".opblock"), what="Swagger UI")
    resources = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(r.startswith(w.url) for r in resources), resources

    # lift it again so the gateway is left as found
    with w.client(w.auditor_key) as c:
        (active,) = c.get("/v1/suspensions", params={"active": "true"}).json()
        assert c.post(f"/v1/suspensions/{active['id']}/lift", json={"reason": "done"}).is_success
