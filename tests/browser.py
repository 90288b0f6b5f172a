"""Headless Debian Chromium through Playwright, for the tests that look at a page as a
person would (the lake console, the dashboard). Playwright's wheel bundles its driver and
launches /usr/bin/chromium (infra/system_deps.sh installs it): nothing is downloaded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless and a new empty --user-data-dir itself.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator:  # -> playwright.sync_api.Browser
    """A launched headless Chromium, closed afterwards (one per fixture scope)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make system-deps`"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
