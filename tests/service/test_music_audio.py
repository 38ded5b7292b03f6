"""POST /api/music/render answering audio: the ``format`` field, the ``Accept`` header, MIDI by default, and a 406
with the install command on a server without FluidSynth. Real synthesis (skipped with the reason without it)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from midi_io.files import notes_to_midi_bytes, read_notes
from midi_io.notes import Note
from service.routes.music import accepted_format
from testing import audio_check

SKIP = audio_check.skip_reason()
needs_fluidsynth = pytest.mark.skipif(SKIP is not None, reason=str(SKIP))
BODY = {"seconds": 2, "seed": 1, "primer_pitches": [60, 64, 67], "include_primer": True}  # the chord always sounds


@needs_fluidsynth
def test_format_wav_answers_a_valid_wav(client: TestClient) -> None:
    r = client.post("/api/music/render", json={**BODY, "format": "wav"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert 'filename="performance-1.wav"' in r.headers["content-disposition"]
    assert r.headers["vary"] == "Accept"
    x, sr, container = audio_check.read_audio(r.content)
    assert container == "WAV" and sr == 44100 and len(x) / sr >= 2.0
    assert audio_check.rms_dbfs(x) > -50.0


@needs_fluidsynth
@pytest.mark.parametrize(("accept", "media", "container"), [
    ("audio/flac", "audio/flac", "FLAC"),
    ("audio/midi;q=0.5, audio/ogg", "audio/ogg", "OGG"),
    ("audio/x-wav", "audio/wav", "WAV"),
])
def test_accept_header_chooses_audio(client: TestClient, accept: str, media: str, container: str) -> None:
    r = client.post("/api/music/render", json=BODY, headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    assert audio_check.read_audio(r.content)[2] == container


def test_json_body_without_format_still_answers_midi(client: TestClient) -> None:
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        r = client.post("/api/music/render", json=BODY, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/midi"
        assert [n.pitch for n in read_notes(r.content)[:3]] == [60, 64, 67]
    r = client.post("/api/music/render", json={**BODY, "format": "mid"}, headers={"Accept": "audio/wav"})
    assert r.headers["content-type"] == "audio/midi"  # the field wins over the header


@needs_fluidsynth
def test_upload_render_answers_audio_too(client: TestClient) -> None:
    primer = notes_to_midi_bytes([Note(60, 90, 0.0, 0.5), Note(64, 90, 0.5, 1.0)])
    r = client.post("/api/music/render/upload", data={"seconds": "1", "format": "ogg", "include_primer": "true"},
                    files={"primer": ("primer.mid", primer, "audio/midi")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/ogg" and r.content[:4] == b"OggS"


def test_unknown_format_is_422(client: TestClient) -> None:
    r = client.post("/api/music/render", json={**BODY, "format": "mp3"})
    assert r.status_code == 422


def test_without_fluidsynth_audio_is_406_with_the_install_command(client: TestClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    for kwargs in ({"json": {**BODY, "format": "wav"}}, {"json": BODY, "headers": {"Accept": "audio/flac"}}):
        r = client.post("/api/music/render", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 406, r.text
        assert "apt-get install fluidsynth fluid-soundfont-gm" in r.json()["detail"]
    r = client.post("/api/music/render", json=BODY)  # MIDI keeps working
    assert r.status_code == 200 and r.headers["content-type"] == "audio/midi"


@pytest.mark.parametrize(("accept", "fmt"), [
    (None, "mid"), ("*/*", "mid"), ("audio/*", "mid"), ("text/html, audio/wav;q=0.9", "wav"),
    ("audio/wav;q=0.2, audio/flac;q=0.8", "flac"), ("audio/ogg;q=0", "mid"), ("audio/wav;q=x", "mid"),
    ("AUDIO/WAV", "wav"),
])
def test_accepted_format(accept: str | None, fmt: str) -> None:
    assert accepted_format(accept) == fmt
