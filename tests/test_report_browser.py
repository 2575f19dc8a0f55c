"""report.html in a real browser: headless Chromium opens the last night of the simulated week from
disk (no network), every chart draws, no script error is logged, and a screenshot is saved.

Needs Debian's `chromium` and `chromium-driver` (`make test` installs them where it can); only
where they are missing is the test skipped, with the reason.
"""

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FIGURES = (
    "map",
    "chart-congestion",
    "chart-den-activity",
    "chart-trend-rows",
    "chart-trend-flags",
    "chart-trend-dens",
    "chart-spoofing-hours",
)


def _binary(path: Path, name: str) -> str | None:
    return str(path) if path.is_file() else shutil.which(name)


@pytest.fixture
def browser(tmp_path):
    chromium = _binary(CHROMIUM, "chromium")
    driver_path = _binary(CHROMEDRIVER, "chromedriver")
    if not chromium or not driver_path:
        pytest.skip(
            "headless Chromium not installed (Debian: apt-get install chromium chromium-driver; "
            "`make test` does this when run as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,2400",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)  # no selenium-manager lookup
    yield driver
    driver.quit()


def test_report_renders_its_map_and_charts_in_headless_chromium(week_reported, browser, tmp_path):
    import polars as pl
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    week = week_reported
    day = week.dates[-1]
    page = week.root / "outbox" / day.isoformat() / "report.html"
    browser.get(page.as_uri())
    drawn = ", ".join(f"#{f} .main-svg" for f in FIGURES)
    WebDriverWait(browser, 60).until(
        lambda b: all(b.find_elements(By.CSS_SELECTOR, f"#{f}.js-plotly-plot .main-svg") for f in FIGURES)
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, drawn)) >= len(FIGURES)

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    assert browser.execute_script("return typeof Plotly") == "object"

    dens = pl.read_parquet(week.root / "lake" / "dens" / f"date={day}" / "*.parquet")
    labels = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#map text")}
    assert set(dens.drop_nulls("lat")["den_id"]) <= labels  # every located den labelled on the map
    points = browser.find_elements(By.CSS_SELECTOR, "#map .scatterlayer .point")
    assert len(points) > 100  # the sites of the inventory
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-congestion .barlayer .point")
    assert bars, "the congestion chart draws tonight's hourly bars"
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-den-activity .heatmaplayer image"), "the heatmap is drawn"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#den-table tbody tr")) == dens.height

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(height, 1200), 6000))
    screenshot = tmp_path / f"report-{day}.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 50_000
    print(f"screenshot: {screenshot}")
