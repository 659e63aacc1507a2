"""The explanation view in a real browser: Debian's headless Chromium (Selenium + Debian's chromedriver)
against the live service (`her2-cds serve`) reading a real sekmet-fhir with the demo patients, in
open-server mode (`/app?iss=&patient=`).

Expected lines, dates and LVEF values are the demo bundles' own relative dates (sandbox/patients),
written out here, not recomputed with the service's code. Screenshots of each page are written to
SCREENSHOT_DIR (printed at the end of the run) so a person can look at them.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import pytest

from hook_calls import call, hook_body
from support import TODAY

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("HER2CDS_SCREENSHOT_DIR",
                                     Path(__file__).resolve().parents[2] / "test-artifacts" / "explain-screenshots"))
PANEL_WIDTH = 1000   # an EHR side panel


def T(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


# patient -> timeline rows (label, start, end, how it ended): from the bundles' ${T-<n>d} dates.
TIMELINES = {
    "demo-1-pat": [("Line 1 (metastatic)", T(385), T(49), "progression")],
    "demo-2-pat": [("Early setting", T(545), T(150), "completed")],
    "demo-3-pat": [("Line 1 (metastatic)", T(600), T(40), "progression")],
    "demo-4-pat": [("Line 1 (metastatic)", T(490), T(35), "progression")],
}
LVEF = {
    "demo-1-pat": [(T(390), 64.0), (T(200), 61.0), (T(40), 60.0)],
    "demo-2-pat": [(T(550), 66.0), (T(160), 62.0), (T(20), 63.0)],
    "demo-4-pat": [(T(495), 62.0), (T(60), 59.0)],
}


def _browser(user_data: str, javascript: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={user_data}", f"--window-size={PANEL_WIDTH},1200"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _needs_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = f"{', '.join(missing)} not installed (Debian packages chromium, chromium-driver; .ci/run installs them)"
        if os.environ.get("HER2CDS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _browser_session(javascript: bool) -> Iterator[object]:
    """A headless Chromium in its own throw-away profile, quit and removed afterwards."""
    _needs_browser()
    profile = tempfile.mkdtemp(prefix="her2cds-chromium-" if javascript else "her2cds-chromium-nojs-")
    driver = _browser(profile, javascript=javascript)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from _browser_session(javascript=True)


@pytest.fixture(scope="module")
def browser_without_js() -> Iterator[object]:
    yield from _browser_session(javascript=False)


def _app_url(live_service, fhir_server: str, patient: str) -> str:
    return f"{live_service.base}/app?" + urlencode({"iss": fhir_server, "patient": patient})


def _open(driver, url: str, *, plots: int = 0) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    if plots:
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-rendered]")) >= plots)


def _screenshot(driver, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(PANEL_WIDTH, min(max(int(height) + 120, 800), 8000))
    path = SCREENSHOT_DIR / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(PANEL_WIDTH, 1200)
    return path


def _plot_count(patient: str) -> int:
    return int(patient in TIMELINES and bool(TIMELINES[patient])) + int(patient in LVEF)


@pytest.mark.parametrize("patient", sorted(TIMELINES))
def test_timeline_shows_each_line_with_its_dates(browser, live_service, fhir_server, patient):
    from selenium.webdriver.common.by import By

    _open(browser, _app_url(live_service, fhir_server, patient), plots=_plot_count(patient))
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid=timeline-table] tbody tr")
    shown = [(r.find_element(By.CSS_SELECTOR, "th").text, r.find_element(By.CSS_SELECTOR, ".start").text,
              r.find_element(By.CSS_SELECTOR, ".end").text, r.find_element(By.CSS_SELECTOR, ".ended").text)
             for r in rows]
    assert shown == TIMELINES[patient]
    bars = browser.execute_script(
        "return document.getElementById('plot-timeline').data.filter(t => t.type === 'bar')"
        ".map(t => [t.y, t.base, t.hovertext])")
    drawn = sorted((y.split(". ", 1)[1], base[:10]) for ys, bases, _ in bars for y, base in zip(ys, bases))
    assert drawn == sorted((label, start) for label, start, _, _ in TIMELINES[patient])
    hover = " ".join(h for _, _, hovers in bars for h in hovers)
    assert "source: Medication" in hover                 # each bar names its source resource(s)
    print(f"screenshot: {_screenshot(browser, patient)}")


@pytest.mark.parametrize("patient", sorted(LVEF))
def test_lvef_plot_has_each_measurement(browser, live_service, fhir_server, patient):
    _open(browser, _app_url(live_service, fhir_server, patient), plots=_plot_count(patient))
    trace = browser.execute_script(
        "const t = document.getElementById('plot-lvef').data[0]; return [t.x, t.y, t.hovertext];")
    assert list(zip([x[:10] for x in trace[0]], trace[1])) == LVEF[patient]
    assert all("source: Observation/" in h for h in trace[2])
    levels = browser.execute_script(
        "return document.getElementById('plot-lvef').layout.shapes.filter(s => s.type === 'line').map(s => s.y0)")
    assert {50, 40, LVEF[patient][0][1]} <= set(levels)   # the 50% and 40% lines and the baseline


@pytest.mark.parametrize("patient", ["demo-1-pat", "demo-3-pat", "demo-4-pat", "demo-6-pat", "demo-7-pat"])
def test_decision_matches_the_card_of_the_same_patient(browser, live_service, fhir_server, patient):
    from selenium.webdriver.common.by import By

    service = live_service.service("patient-view")
    response = call(live_service.base, service, hook_body(service, fhir_server, patient, [], "fetch"))
    assert response.status_code == 200, response.text[:300]
    cards = response.json()["cards"]
    _open(browser, _app_url(live_service, fhir_server, patient))
    shown = browser.find_elements(By.CSS_SELECTOR, "[data-testid=decision]")
    assert [(d.get_attribute("data-topic"), d.find_element(By.CSS_SELECTOR, "[data-testid=decision-summary]").text)
            for d in shown] == [(c["source"]["topic"]["code"], c["summary"]) for c in cards]
    for d, card in zip(shown, cards):
        options = [(o.text, o.get_attribute("data-testid") == "recommended")
                   for o in d.find_elements(By.CSS_SELECTOR, ".options li")]
        assert options == [(s["label"], bool(s.get("isRecommended"))) for s in card.get("suggestions", [])]
        assert d.find_elements(By.CSS_SELECTOR, "[data-testid=rule] a[href^='http']"), "every decision cites its rules"
    for card in cards:
        assert [link for link in card["links"] if link["type"] == "smart"] == [
            {"label": "Therapy timeline and reasoning", "type": "smart", "url": f"{live_service.base}/app/launch"}]


def test_page_without_javascript_shows_the_tables(browser_without_js, live_service, fhir_server):
    from selenium.webdriver.common.by import By

    _open(browser_without_js, _app_url(live_service, fhir_server, "demo-1-pat"))
    assert not browser_without_js.find_elements(By.CSS_SELECTOR, "[data-rendered]")
    for table in ("timeline-table", "lvef-table", "receptor-table", "safety-table"):
        assert browser_without_js.find_element(By.CSS_SELECTOR, f"[data-testid={table}]").is_displayed(), table
    rows = browser_without_js.find_elements(By.CSS_SELECTOR, "[data-testid=lvef-table] tbody tr")
    assert len(rows) == len(LVEF["demo-1-pat"])
    print(f"screenshot: {_screenshot(browser_without_js, 'demo-1-pat-no-javascript')}")


def test_page_loads_without_csp_violations_or_outside_requests(browser, live_service, fhir_server):
    _open(browser, _app_url(live_service, fhir_server, "demo-4-pat"), plots=2)
    problems = [e["message"] for e in browser.get_log("browser")
                if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert problems == []
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) <= {live_service.base}            # plotly.js from the service itself, no CDN


def test_page_prints_to_pdf_with_its_plots(browser, live_service, fhir_server):
    import base64

    _open(browser, _app_url(live_service, fhir_server, "demo-2-pat"), plots=2)
    pdf = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
    assert pdf.startswith(b"%PDF")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / "demo-2-pat.pdf").write_bytes(pdf)


def test_brain_metastases_are_highlighted_in_the_list_and_on_the_timeline(browser, live_service, fhir_server):
    from selenium.webdriver.common.by import By

    _open(browser, _app_url(live_service, fhir_server, "demo-4-pat"), plots=2)
    brain = browser.find_elements(By.CSS_SELECTOR, "[data-testid=sites] li.brain")
    assert len(brain) == 1 and "brain" in brain[0].text.lower()
    markers = browser.execute_script(
        "const t = document.getElementById('plot-timeline').data.find(t => t.name === 'metastatic site');"
        "return t.hovertext.filter((h, i) => t.marker.color[i] === '#b00020');")
    assert len(markers) == 1 and "Condition/demo-4-brain" in markers[0]
