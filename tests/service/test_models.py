"""Several music models: each named by its checkpoint's stem, each on its own engine, chosen per request by
``model`` (renders, uploads, events, the live stream, port sessions); an unknown name is a 422 naming the others."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from midi_io.files import notes_to_midi_bytes, read_notes
from midi_io.notes import Note
from service.settings import Settings

from .conftest import FakePorts  # type: ignore[import-not-found]

SECOND = "music-scores"


def read_until(ws: Any, kind: str, limit: int = 100_000) -> list[dict[str, Any]]:
    """Messages up to and including the first of type ``kind``."""
    out: list[dict[str, Any]] = []
    for _ in range(limit):
        out.append(ws.receive_json())
        if out[-1]["type"] == kind:
            return out
    raise AssertionError(f"no {kind!r} message")


def wait_idle(client: TestClient, timeout_s: float = 3.0) -> bool:
    """Every engine and live slot free again."""
    rt = client.app.state.runtime
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(e.active == 0 for e in rt.engines.values()) and rt.live.used == 0:
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def two(make_client: Callable[..., TestClient], two_models_dir: Path) -> TestClient:
    """A service with both default music checkpoints (``music`` first, so the default)."""
    return make_client(Settings(checkpoints_dir=two_models_dir, max_renders=4, max_live_streams=3,
                                max_port_sessions=2, render_timeout_s=30, session_lease_s=30))


def steps(client: TestClient) -> dict[str, int]:
    return {name: engine.steps for name, engine in client.app.state.runtime.engines.items()}


def test_models_lists_both_music_models(two: TestClient) -> None:
    models = {m["name"]: m for m in two.get("/api/models").json()}
    assert list(models) == ["music", SECOND, "text", "strokes"]
    music = [m for m in models.values() if m["kind"] == "music"]
    assert [(m["name"], m["file"], m["default"], m["loaded"]) for m in music] == [
        ("music", "music.pt", True, True), (SECOND, f"{SECOND}.pt", False, True)]
    assert all(m["config"]["hidden_size"] == 32 and m["has_card"] for m in music)
    assert (models["text"]["kind"], models["text"]["default"], models["text"]["loaded"]) == ("text", False, False)
    assert two.get(f"/api/models/{SECOND}").json()["card"].startswith("# Scores model")
    assert "second name" in two.get(f"/api/models/{SECOND}/card").text
    assert two.get("/api/health").json()["models"] == {"music": True, SECOND: True, "text": False, "strokes": False}
    assert set(two.app.state.runtime.engines) == {"music", SECOND}


def test_a_render_uses_the_model_it_names(two: TestClient) -> None:
    before = steps(two)
    r = two.post("/api/music/render", json={"seconds": 2, "seed": 1, "model": SECOND})
    assert r.status_code == 200, r.text
    read_notes(r.content, name="render.mid")
    after = steps(two)
    assert after[SECOND] > before[SECOND] and after["music"] == before["music"]  # only its engine stepped
    events = two.post("/api/music/events", json={"seconds": 2, "seed": 1, "model": SECOND}).json()
    assert events["model"] == SECOND
    default = two.post("/api/music/events", json={"seconds": 2, "seed": 1}).json()
    assert default["model"] == "music" and steps(two)["music"] > after["music"]
    assert default["notes"] == events["notes"]  # the same weights under two names: the same music per seed


def test_an_upload_render_takes_the_model_as_a_form_field(two: TestClient) -> None:
    primer = notes_to_midi_bytes([Note(60, 90, 0.0, 0.5), Note(64, 90, 0.5, 1.0)])
    before = steps(two)[SECOND]
    r = two.post("/api/music/render/upload", data={"seconds": "2", "model": SECOND},
                 files={"primer": ("primer.mid", primer, "audio/midi")})
    assert r.status_code == 200, r.text
    assert steps(two)[SECOND] > before
    bad = two.post("/api/music/render/upload", data={"seconds": "2", "model": "nope"},
                   files={"primer": ("primer.mid", primer, "audio/midi")})
    assert bad.status_code == 422 and SECOND in bad.json()["detail"]


@pytest.mark.parametrize("path", ["/api/music/render", "/api/music/events"])
def test_an_unknown_model_is_422_naming_the_available_ones(two: TestClient, path: str) -> None:
    r = two.post(path, json={"seconds": 1, "model": "nope"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "'nope'" in detail and "music, music-scores" in detail
    assert two.post(path, json={"seconds": 1, "model": ""}).status_code == 422


def test_a_live_stream_plays_the_model_it_names(two: TestClient) -> None:
    rt = two.app.state.runtime
    with two.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "seed": 2, "model": SECOND, "max_seconds": 1.5})
        started = read_until(ws, "started")[-1]
        assert started["model"] == SECOND
        assert (rt.engines[SECOND].active, rt.engines["music"].active) == (1, 0)
        messages = read_until(ws, "end")
    assert [m for m in messages if m["type"] == "note" and m["on"]]
    assert messages[-1] == {"type": "end", "reason": "finished"}
    assert wait_idle(two) and rt.engines[SECOND].active == 0


def test_a_live_stream_with_an_unknown_model_is_refused(two: TestClient) -> None:
    with two.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "model": "nope"})
        err = ws.receive_json()
        assert err["type"] == "error" and err["status"] == 422 and "music-scores" in err["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    assert wait_idle(two)


def test_a_port_session_plays_the_model_it_names(two: TestClient, fake_ports: FakePorts) -> None:
    r = two.post("/api/sessions", json={"port_name": "scores", "model": SECOND})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["model"] == SECOND and two.get("/api/sessions").json()[0]["model"] == SECOND
    rt = two.app.state.runtime
    assert (rt.engines[SECOND].active, rt.engines["music"].active) == (1, 0)
    default = two.post("/api/sessions", json={"port_name": "plain"}).json()
    assert default["model"] == "music"
    for s in (created, default):
        two.delete(f"/api/sessions/{s['id']}", headers={"Authorization": f"Bearer {s['token']}"})
    bad = two.post("/api/sessions", json={"port_name": "x", "model": "nope"})
    assert bad.status_code == 422 and "music-scores" in bad.json()["detail"]
    assert "x" not in fake_ports.opened  # refused before a port was opened


def test_a_missing_second_checkpoint_is_skipped(make_client: Callable[..., TestClient], baby_checkpoint: Path,
                                                tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(baby_checkpoint, tmp_path / "music.pt")
    with caplog.at_level(logging.WARNING, logger="service.app"):
        c = make_client(Settings(checkpoints_dir=tmp_path))
    assert [m["name"] for m in c.get("/api/models").json() if m["kind"] == "music"] == ["music"]
    assert "skipping the music-scores music model" in caplog.text
    r = c.post("/api/music/events", json={"seconds": 1, "model": SECOND})
    assert r.status_code == 422 and "available music models are music" in r.json()["detail"]


def test_the_default_is_the_first_that_loads(make_client: Callable[..., TestClient], baby_checkpoint: Path,
                                             tmp_path: Path) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    shutil.copy(baby_checkpoint, tmp_path / "music.pt")
    c = make_client(Settings(checkpoints_dir=tmp_path, music_checkpoints=["broken.pt", "music.pt"]))
    music: list[dict[str, Any]] = [m for m in c.get("/api/models").json() if m["kind"] == "music"]
    assert [(m["name"], m["loaded"], m["default"]) for m in music] == [("broken", False, False), ("music", True, True)]
    assert music[0]["error"] and str(tmp_path) not in music[0]["error"]
    assert c.get("/api/health").json()["status"] == "ok"
    assert c.post("/api/music/events", json={"seconds": 1}).json()["model"] == "music"
    r = c.post("/api/music/events", json={"seconds": 1, "model": "broken"})
    assert r.status_code == 503 and "broken model is unavailable" in r.json()["detail"]
