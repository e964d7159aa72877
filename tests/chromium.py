"""Debian's headless Chromium driven by Playwright (which cannot download its own browser
here): the one place the browser tests find it. Without ``/usr/bin/chromium`` a test is
skipped on a workstation and fails in CI (``CI`` set), so a missing browser never passes
silently there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> None:
    """Skip (or fail in CI) without the browser."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium package "
                    "(apt-get install --no-install-recommends chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install --no-install-recommends "
                "chromium); CI runs this test")


@contextmanager
def launched() -> Iterator[Any]:
    """A headless Chromium, closed at the end."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
