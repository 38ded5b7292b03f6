"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never a downloaded
browser) against a real ``perfrnn serve`` process: live stream played by the SoundFont piano onto the piano roll,
a primer upload, controls, pause, text streaming, strokes drawn with the model and the .mid download; no request
leaves the server. ``PERFRNN_SCREENSHOT=docs/screenshot.png`` also saves a screenshot of the page there (and one
per panel beside it: ``docs/music.png``, ``docs/text.png``, ``docs/strokes.png``), and
``PERFRNN_BROWSER_CHECKPOINTS=checkpoints`` serves that folder instead of the tests' tiny models (for the docs)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from midi_io.files import notes_to_midi_bytes, read_notes
from midi_io.notes import Note

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def page_checkpoints(checkpoints_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' tiny text and stroke models, and the shipped score model (2x256) as ``music``: the baby music
    model samples almost independently of its input, so a primer could not be seen to change its stream."""
    folder = tmp_path_factory.mktemp("page-checkpoints")
    for name in ("text.pt", "strokes.pt"):
        shutil.copy(checkpoints_dir / name, folder / name)
    shutil.copy(ROOT / "checkpoints" / "music-scores.pt", folder / "music.pt")
    return folder


@pytest.fixture(scope="module")
def server(page_checkpoints: Path) -> Iterator[str]:
    """``perfrnn serve`` in a subprocess on a free loopback port; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = os.environ.get("PERFRNN_BROWSER_CHECKPOINTS") or str(page_checkpoints)
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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install --no-install-recommends chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, server: str) -> tuple[object, list[str], list[str]]:
    """A fresh page on the server, with the page errors and every URL it requested."""
    page = browser.new_page(viewport={"width": 1040, "height": 1180}, accept_downloads=True)
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(server)
    page.wait_for_function("() => document.getElementById('health').textContent.includes('music ✓')")
    return page, errors, requests


def assert_same_origin(server: str, requests: list[str]) -> None:
    ws = server.replace("http://", "ws://", 1)
    foreign = [u for u in requests if not (u.startswith((server + "/", ws + "/", "blob:", "data:")) or u == server)]
    assert requests and not foreign, foreign


def shot(page, locator: str, name: str) -> None:
    if target := os.environ.get("PERFRNN_SCREENSHOT"):
        page.locator(locator).screenshot(path=str((ROOT / target).parent / name))


def first_events(page, n: int) -> list[list[float]]:
    page.wait_for_function(f"() => window.perfrnn.live.received.length >= {n}", timeout=30_000)
    return page.evaluate(f"window.perfrnn.live.received.slice(0, {n})")


def stop(page) -> None:
    page.click("#stop")
    page.wait_for_function("() => document.getElementById('live-status').textContent.startsWith('stopped')")


def test_the_page_plays_a_live_stream_onto_the_piano_roll(server: str, browser, tmp_path: Path) -> None:
    page, errors, requests = open_page(browser, server)
    try:
        page.click("#start")
        # the SoundFont piano plays (not the oscillator), and sound comes out of the page's audio graph
        page.wait_for_function("() => document.getElementById('audio-status').dataset.engine === 'soundfont'",
                               timeout=30_000)
        page.wait_for_function("() => Number(document.getElementById('piano-roll').dataset.notes) >= 3", timeout=30_000)
        page.wait_for_function("() => Number(document.getElementById('audio-status').dataset.notes) >= 3")
        page.wait_for_function("() => window.perfrnn.sound.rms() > 1e-4", timeout=10_000, polling=20)
        plain = first_events(page, 40)
        stop(page)

        # a primer upload: the next stream with the same seed starts from it, so it plays something else
        primer = tmp_path / "primer.mid"
        notes = [Note(48 + 7 * (i % 5), 20, 0.3 * i, 0.3 * i + 0.25) for i in range(20)]
        primer.write_bytes(notes_to_midi_bytes(notes))
        page.set_input_files("#primer-file", str(primer))
        page.wait_for_function("() => Number(document.getElementById('primer-status').dataset.notes) === 20")
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
        page.click("#start")
        primed = first_events(page, 40)
        start = json.loads(sent[0])
        assert start["type"] == "start" and len(start["primer_notes"]) == 20
        assert start["primer_notes"][0] == {"pitch": 48, "velocity": 20, "start_s": 0, "end_s": 0.25}
        assert primed != plain
        page.wait_for_function("() => Number(document.getElementById('piano-roll').dataset.notes) >= 3", timeout=30_000)

        # sliders and key: each change goes to the server as a control message
        page.eval_on_selector("#temperature", "e => { e.value = '0.7'; e.dispatchEvent(new Event('change')); }")
        page.eval_on_selector("#density", "e => { e.value = '8'; e.dispatchEvent(new Event('change')); }")
        page.select_option("#key", "A minor")
        page.click("#pause")
        page.wait_for_function("() => document.getElementById('live-status').textContent === 'paused'")
        page.click("#pause")
        page.wait_for_function("() => document.getElementById('live-status').textContent.startsWith('playing')")
        assert "error" not in (page.text_content("#live-status") or "")
        notes_before = int(page.get_attribute("#piano-roll", "data-notes") or 0)
        page.wait_for_function(f"() => Number(document.getElementById('piano-roll').dataset.notes) > {notes_before}",
                               timeout=30_000)  # still playing after the controls
        shot(page, "#live-panel", "music.png")

        stop(page)
        assert page.get_attribute("#audio-status", "data-engine") == "soundfont"
        with page.expect_download() as download:
            page.click("#download")
        played = read_notes(Path(download.value.path()).read_bytes(), name="played.mid")
        assert len(played) >= 3
        assert not errors, errors
        assert_same_origin(server, requests)
    finally:
        page.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{server}/api/health").json()["engine_streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{server}/api/health").json()["engine_streams"] == 0  # the stream was freed


def test_text_streams_and_strokes_continue_a_drawing(server: str, browser, tmp_path: Path) -> None:
    page, errors, requests = open_page(browser, server)
    try:
        page.click("#start")  # music plays on while the other panels work (and fills the page's screenshot)
        # text: pieces arrive one by one; a refusal shows the server's reason, not just the status
        page.fill("#text-length", "200")
        page.click("#text-go")
        page.wait_for_function("() => document.getElementById('text-out').dataset.done === '1'")
        assert int(page.get_attribute("#text-out", "data-chunks") or 0) > 10
        assert len(page.text_content("#text-out") or "") == len("ROMEO:") + 200
        shot(page, "#text-panel", "text.png")
        page.fill("#text-length", "999999")
        page.click("#text-go")
        page.wait_for_function("() => document.getElementById('text-out').classList.contains('error')")
        message = page.text_content("#text-out") or ""
        assert message.startswith("422: length:") and "5000" in message, message
        page.fill("#text-length", "300")
        page.click("#text-go")
        page.wait_for_function("() => document.getElementById('text-out').dataset.done === '1'")

        # strokes: two strokes drawn with the pointer; on release the model carries on from the last point
        page.click("#strokes-go")
        page.wait_for_function("() => Number(document.getElementById('strokes').dataset.drawings) > 0")
        box = page.locator("#draw").bounding_box()
        assert box is not None
        for (x0, y0), (x1, y1) in (((0.2, 0.3), (0.8, 0.3)), ((0.5, 0.15), (0.45, 0.6))):
            page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
            page.mouse.down()
            for i in range(1, 11):
                page.mouse.move(box["x"] + (x0 + (x1 - x0) * i / 10) * box["width"],
                                box["y"] + (y0 + (y1 - y0) * i / 10) * box["height"])
            page.mouse.up()
        page.wait_for_function("() => document.getElementById('draw').dataset.done === '1'", timeout=20_000)
        data = page.evaluate("({...document.getElementById('draw').dataset})")
        assert data["userStrokes"] == "2" and int(data["modelStrokes"]) >= 1
        ux, uy = (float(v) for v in data["userLast"].split(","))
        mx, my = (float(v) for v in data["modelFirst"].split(","))
        width = float(page.get_attribute("#draw", "width") or 436)
        assert abs(ux - 0.45 * width) < 3 and abs(uy - 0.6 * width) < 3  # the pointer's last point, in canvas px
        assert abs(mx - ux) < 1 and abs(my - uy) < 1  # the continuation starts where the user's stroke ended
        shot(page, "#strokes-panel", "strokes.png")
        page.wait_for_function("() => Number(document.getElementById('piano-roll').dataset.notes) >= 3", timeout=30_000)
        target = os.environ.get("PERFRNN_SCREENSHOT")
        page.screenshot(path=str(ROOT / target if target else tmp_path / "page.png"), full_page=True)
        stop(page)
        page.click("#draw-undo")  # undo takes the model's continuation back, then the user's strokes one by one
        assert page.get_attribute("#draw", "data-model-strokes") == "0"
        page.click("#draw-undo")
        assert page.get_attribute("#draw", "data-user-strokes") == "1"
        with page.expect_download() as download:
            page.click("#draw-svg")
        assert Path(download.value.path()).read_text().count("<path") == 1
        assert not errors, errors
        assert_same_origin(server, requests)

        # without the SoundFont the page falls back to its oscillator, and says so
        page.route("**/piano.sf3", lambda route: route.abort())
        page.reload()
        page.click("#start")
        page.wait_for_function("() => document.getElementById('audio-status').dataset.engine === 'oscillator'",
                               timeout=30_000)
        assert "failed" in (page.text_content("#audio-status") or "")
        page.wait_for_function("() => Number(document.getElementById('audio-status').dataset.notes) >= 1",
                               timeout=30_000)
        stop(page)
    finally:
        page.close()
