"""routes/music.py: renders through the shared engine, uploads, limits and error statuses."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import mido
import pytest
from fastapi.testclient import TestClient

from midi_io.files import notes_to_midi_bytes, read_notes
from midi_io.notes import Note
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import Stream
from performance_rnn.tasks.music.generate import generate_performances, load_music, music_engine


def test_render_returns_a_readable_midi_file(client: TestClient) -> None:
    r = client.post("/api/music/render", json={"seconds": 4, "seed": 3, "temperature": 1.0})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/midi"
    assert 'filename="performance-3.mid"' in r.headers["content-disposition"]
    notes = read_notes(r.content, name="render.mid")
    assert all(n.start_s < 4.0 and n.end_s <= 4.0 + 1e-3 for n in notes)
    mido.MidiFile(file=io.BytesIO(r.content))  # mido reads it too


def test_events_match_the_offline_sampler_for_the_same_seed(client: TestClient, settings) -> None:
    body = {"seconds": 3, "seed": 11, "temperature": 0.9, "top_k": 40, "density": 4, "key": "Am"}
    r = client.post("/api/music/events", json=body)
    assert r.status_code == 200, r.text
    got = [(n["pitch"], n["velocity"], n["start_s"], n["end_s"]) for n in r.json()["notes"]]
    mm = load_music(settings.checkpoint_path("music.pt"))
    want = generate_performances(mm, seconds=3, seeds=[11], sampling=SamplingConfig(0.9, 40), density_nps=4,
                                 key="Am")[0]
    assert got == [(n.pitch, n.velocity, round(n.start_s, 4), round(n.end_s, 4)) for n in want]
    assert client.post("/api/music/events", json=body).json() == r.json()  # deterministic per seed


def test_primer_pitches_and_include_primer(client: TestClient) -> None:
    r = client.post("/api/music/events", json={"seconds": 2, "primer_pitches": [60, 64, 67], "include_primer": True})
    assert r.status_code == 200, r.text
    first = sorted(n["pitch"] for n in r.json()["notes"] if n["start_s"] == 0.0)
    assert {60, 64, 67} <= set(first)


def test_upload_primer_continues_a_midi_file(client: TestClient) -> None:
    primer = notes_to_midi_bytes([Note(60, 90, 0.0, 0.5), Note(64, 90, 0.5, 1.0), Note(67, 90, 1.0, 1.5)])
    r = client.post("/api/music/render/upload", data={"seconds": "2", "seed": "1", "include_primer": "true"},
                    files={"primer": ("primer.mid", primer, "audio/midi")})
    assert r.status_code == 200, r.text
    notes = read_notes(r.content)
    assert [n.pitch for n in notes[:3]] == [60, 64, 67]


def test_unreadable_midi_upload_is_422_with_the_reason(client: TestClient) -> None:
    r = client.post("/api/music/render/upload", data={"seconds": "2"},
                    files={"primer": ("junk.mid", b"not a midi file", "audio/midi")})
    assert r.status_code == 422
    assert "junk.mid" in r.json()["detail"] and "MThd" in r.json()["detail"]


def test_upload_over_the_limit_is_413(client: TestClient) -> None:
    big = b"MThd" + b"\0" * (70 * 1024)
    r = client.post("/api/music/render/upload", data={"seconds": "2"}, files={"primer": ("big.mid", big)})
    assert r.status_code == 413
    assert "bytes allowed" in r.json()["detail"]


def test_a_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():  # no Content-Length: the limit applies while the body streams in
        for _ in range(80):
            yield b"x" * 1024

    r = client.post("/api/music/events", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("body", [
    {"seconds": 0}, {"seconds": -1}, {"seconds": 10_000}, {"seconds": 61},  # 61 > this server's limit of 60
    {"temperature": -0.1}, {"temperature": 11}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5},
    {"key": "H minor"}, {"density": -1}, {"primer_pitches": [128]}, {"seed": -1}, {"unknown": 1},
    {"seconds": "NaN"}, {"seconds": "Infinity"},
])
def test_invalid_parameters_are_422(client: TestClient, body: dict[str, object]) -> None:
    r = client.post("/api/music/render", json=body)
    assert r.status_code == 422, (body, r.text)


def test_notes_to_midi(client: TestClient) -> None:
    notes = [{"pitch": 60, "velocity": 80, "start_s": 0.0, "end_s": 0.5},
             {"pitch": 67, "velocity": 70, "start_s": 0.25, "end_s": 1.0}]
    r = client.post("/api/music/midi", json={"notes": notes})
    assert r.status_code == 200
    assert [(n.pitch, n.velocity) for n in read_notes(r.content)] == [(60, 80), (67, 70)]
    bad = client.post("/api/music/midi", json={"notes": [{"pitch": 60, "velocity": 80, "start_s": 1, "end_s": 0}]})
    assert bad.status_code == 422


def test_overload_is_429(make_client, settings) -> None:
    c = make_client(settings.model_copy(update={"max_renders": 1}))
    runtime = c.app.state.runtime
    runtime.renders.acquire()  # one render in flight
    try:
        r = c.post("/api/music/render", json={"seconds": 1})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
    finally:
        runtime.renders.release()
    assert c.post("/api/music/render", json={"seconds": 1}).status_code == 200


def test_music_endpoints_are_503_without_a_checkpoint(make_client, tmp_path) -> None:
    from service.settings import Settings

    c = make_client(Settings(checkpoints_dir=tmp_path))
    r = c.post("/api/music/render", json={"seconds": 1})
    assert r.status_code == 503
    assert "music.pt" in r.json()["detail"] and str(tmp_path) not in r.json()["detail"]
    assert c.get("/api/health").json()["status"] == "degraded"


def test_renders_are_engine_streams_that_are_freed(client: TestClient) -> None:
    engine = client.app.state.runtime.engine
    before = engine.steps
    assert client.post("/api/music/render", json={"seconds": 2}).status_code == 200
    assert engine.steps > before and engine.active == 0


def test_concurrent_renders_are_stepped_in_one_batch(client: TestClient) -> None:
    """Three renders reach a held-back engine (a fresh one, not started until all three have opened their
    streams): they join in one step and every step carries each render until it ends, whatever the timing."""
    rt = client.app.state.runtime
    served = rt.engines["music"]
    engine = music_engine(rt.models.music["music"])  # the service's engine for this model, not started yet
    opened: list[Stream] = []
    open_stream = engine.open
    engine.open = lambda spec: opened.append(open_stream(spec)) or opened[-1]  # type: ignore[method-assign]
    rt.engines["music"] = engine
    try:
        with ThreadPoolExecutor(3) as pool:
            results = [pool.submit(client.post, "/api/music/events", json={"seconds": 5, "seed": s}) for s in (1, 2, 3)]
            deadline = time.monotonic() + 30
            while engine.active < 3 and time.monotonic() < deadline:  # all three wait in the engine
                time.sleep(0.01)
            engine.start()
            assert [r.result().status_code for r in results] == [200, 200, 200]
    finally:
        rt.engines["music"] = served
        engine.stop()
    steps = sorted(s.steps for s in opened)
    assert len(steps) == 3 and steps[0] > 0
    assert engine.steps == steps[-1] and engine.stepped_rows == sum(steps)  # one batch from the first step on
