"""A real `stocklake dashboard` server in headless Chromium: every page renders its charts.

The server runs in the background (`--background --port N`) against a schema of real
bars; Playwright drives Debian's /usr/bin/chromium (nothing downloaded). Screenshots go
to DASHBOARD_SCREENSHOTS_DIR if set, else to the test's tmp folder (its path is printed;
run with -s to see it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.dashboard_server import server_for
from stocklake.settings import load_settings
from tests.private_stack import ROOT, free_port

pytestmark = pytest.mark.services

# URL path, plotly charts on the page, screenshot name.
PAGES = (
    ("/", 4, "1-overview.png"),
    ("/symbol", 4, "2-symbol.png"),
    ("/realtime", 6, "3-realtime.png"),
    ("/pipeline", 1, "4-pipeline.png"),
)
ERROR_TEXT = ("Traceback", "Error")


def dashboard_command() -> list[str]:
    """`stocklake dashboard`."""
    return [sys.executable, "-m", "cli", "dashboard"]


def run_dashboard(env: dict[str, str], *args: str):
    import subprocess

    return subprocess.run(
        [*dashboard_command(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def remove_log(port: str) -> None:
    """The server's log in $STATE_DIR/dashboard/ (the shared stack's): a test's is its own."""
    server_for(load_settings(), int(port)).log_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server(loaded_schema: str) -> Iterator[str]:
    """A background dashboard on a free port reading the loaded schema: its URL."""
    port = str(free_port())
    env = {**os.environ, "WAREHOUSE": "postgres", "WAREHOUSE_SCHEMA": loaded_schema}
    started = run_dashboard(env, "--background", "--port", port)
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"http://127.0.0.1:{port}"
    assert url in started.stdout, started.stdout
    try:
        yield url
    finally:
        stopped = run_dashboard(env, "--stop", "--port", port)
        remove_log(port)
        assert "dashboard stopped" in stopped.stdout, stopped.stdout + stopped.stderr


def open_page(page, url: str, plots: int) -> None:
    """Load a page and wait until its `plots` charts are drawn and the run is over."""
    page.goto(url)
    page.locator("[data-testid='stApp']").wait_for()
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}"
    )


@pytest.mark.parametrize(("path", "plots", "name"), PAGES)
def test_page_renders_charts(server: str, browser, shots: Path, path, plots, name) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_page(page, server + path, plots)
        # Let the last chart finish drawing (and the run's status widget go away).
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        # Streamlit scrolls inside its main block: grow the window to the page's height.
        height = page.evaluate('document.querySelector("[data-testid=stMain]").scrollHeight')
        page.set_viewport_size({"width": 1600, "height": min(int(height) + 40, 4000)})
        page.wait_for_timeout(1000)
        page.screenshot(path=shots / name, full_page=True)
        assert page.locator(".js-plotly-plot").count() == plots
        assert page.locator(".js-plotly-plot .main-svg").count() >= plots
        assert page.locator("[data-testid='stException']").count() == 0
        body = page.inner_text("body")
        for word in ERROR_TEXT:
            assert word not in body, f"{path}: {word!r} on the page:\n{body[:2000]}"
    finally:
        context.close()
