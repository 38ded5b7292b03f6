"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never a downloaded
browser) against a real ``perfrnn serve`` process: live stream onto the piano roll, controls, pause, text,
strokes and the .mid download. ``PERFRNN_SCREENSHOT=docs/screenshot.png`` also saves a screenshot there, and
``PERFRNN_BROWSER_CHECKPOINTS=checkpoints`` serves that folder instead of the tests' tiny models (for the docs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from midi_io.files import read_notes

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(checkpoints_dir: Path) -> Iterator[str]:
    """``perfrnn serve`` in a subprocess on a free loopback port; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = os.environ.get("PERFRNN_BROWSER_CHECKPOINTS") or str(checkpoints_dir)
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--checkpoints-dir", folder, "--log-level", "warning"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "perfrnn serve exited"
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "perfrnn serve did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_the_page_plays_a_live_stream_onto_the_piano_roll(server: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install --no-install-recommends chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1040, "height": 1180}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server)
            page.wait_for_function("document.getElementById('health').textContent.includes('music ✓')")

            page.click("#start")
            page.wait_for_function("Number(document.getElementById('piano-roll').dataset.notes) >= 3",
                                   timeout=30_000)
            # sliders and key: each change goes to the server as a control message
            page.eval_on_selector("#temperature", "e => { e.value = '0.7'; e.dispatchEvent(new Event('change')); }")
            page.eval_on_selector("#density", "e => { e.value = '8'; e.dispatchEvent(new Event('change')); }")
            page.select_option("#key", "A minor")
            page.click("#pause")
            page.wait_for_function("document.getElementById('live-status').textContent === 'paused'")
            page.click("#pause")
            page.wait_for_function("document.getElementById('live-status').textContent.startsWith('playing')")
            assert "error" not in (page.text_content("#live-status") or "")

            page.click("#text-go")
            page.wait_for_function("document.getElementById('text-out').textContent.length > 20")
            page.click("#strokes-go")
            page.wait_for_function("Number(document.getElementById('strokes').dataset.drawings) > 0")
            notes_before = int(page.get_attribute("#piano-roll", "data-notes") or 0)
            page.wait_for_function(f"Number(document.getElementById('piano-roll').dataset.notes) > {notes_before}",
                                   timeout=30_000)  # still playing after the controls
            shot = os.environ.get("PERFRNN_SCREENSHOT")
            page.screenshot(path=str(ROOT / shot if shot else tmp_path / "page.png"), full_page=True)

            page.click("#stop")
            page.wait_for_function("document.getElementById('live-status').textContent.startsWith('stopped')")
            with page.expect_download() as download:
                page.click("#download")
            played = read_notes(Path(download.value.path()).read_bytes(), name="played.mid")
            assert len(played) >= 3
            assert not errors, errors
        finally:
            browser.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{server}/api/health").json()["engine_streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{server}/api/health").json()["engine_streams"] == 0  # the stream was freed
