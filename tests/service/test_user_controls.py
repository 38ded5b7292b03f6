"""The user-facing defects found by trying it (issue 12): what density and key do, MIDI channels numbered as
DAWs number them, and jam passthrough on its own channel, released on stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mido
import pytest
from fastapi.testclient import TestClient

from midi_io.capture import CaptureConfig, PhraseCapture
from midi_io.echo import Echo
from performance_rnn.codecs.controls import NUM_DENSITY_BINS, density_bin, key_histogram
from performance_rnn.tasks.music.generate import (
    controls_for,
    generate_performances,
    load_music,
    music_engine,
    parse_key,
)
from service.cli import build_parser, main
from service.jam import Jam, JamConfig

from .conftest import FakePort, unmatched_note_ons  # type: ignore[import-not-found]

SCORES = Path(__file__).resolve().parents[2] / "checkpoints" / "music-scores.pt"


def test_a_minor_key_differs_from_its_relative_major() -> None:
    assert parse_key("D minor") != parse_key("F")
    assert parse_key("Dm") == parse_key("D minor") and parse_key("F") == parse_key("F major")
    d_minor = key_histogram(2, "minor")
    assert max(d_minor) == d_minor[2] == d_minor[5] == d_minor[9]  # D F A, the tonic triad


@pytest.mark.skipif(not SCORES.exists(), reason="needs the shipped checkpoints/music-scores.pt")
def test_d_minor_and_f_major_play_different_music() -> None:
    mm = load_music(SCORES)
    d_minor, f_major = (generate_performances(mm, seconds=5, seeds=[3], key=key)[0] for key in ("D minor", "F"))
    assert d_minor != f_major


def test_a_key_alone_keeps_the_models_own_density(baby_checkpoint: Path) -> None:
    mm = load_music(baby_checkpoint)
    vec = controls_for(mm, None, "C")
    assert vec is not None
    assert int(vec[1 : 1 + NUM_DENSITY_BINS].argmax()) == density_bin(mm.own_density())


@pytest.mark.skipif(not SCORES.exists(), reason="needs the shipped checkpoints/music-scores.pt")
def test_a_key_alone_no_longer_doubles_the_score_models_density() -> None:
    """music-scores.pt plays ~4 notes/s on its own; Magenta's 15 n/s fallback made a key alone ~6.8 (these seeds)."""
    mm = load_music(SCORES)
    seeds, seconds = list(range(10, 18)), 10.0

    def rate(**kw: object) -> float:
        runs = generate_performances(mm, seconds=seconds, seeds=seeds, **kw)  # type: ignore[arg-type]
        return sum(len(r) for r in runs) / len(runs) / seconds

    alone, keyed = rate(), rate(key="C")
    assert keyed < 1.4 * alone, (alone, keyed)


@pytest.mark.parametrize("density", [0, 0.5, 65, 1000])
def test_a_density_out_of_range_is_refused_with_its_meaning(client: TestClient, density: float, tmp_path: Path,
                                                            baby_checkpoint: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    r = client.post("/api/music/render", json={"seconds": 1, "density": density})
    assert r.status_code == 422
    rc = main(["generate", "--checkpoint", str(baby_checkpoint), "--density", str(density), "--seconds", "1",
               "-o", str(tmp_path / "o.mid")])
    err = capsys.readouterr().err
    assert rc == 1 and "density must be 1..64 notes per second" in err and not (tmp_path / "o.mid").exists()


def test_density_and_key_are_explained_in_help_and_schema(client: TestClient,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("generate").parse_args(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "power-of-two bins" in text and "own pace" in text and "tonic triad" in text
    fields = client.get("/openapi.json").json()["components"]["schemas"]["RenderRequest"]["properties"]
    assert "power-of-two bins" in str(fields["density"]) and "tonic triad" in str(fields["key"])
    assert fields["density"]["anyOf"][0]["minimum"] == 1 and fields["density"]["anyOf"][0]["maximum"] == 64


@pytest.mark.parametrize(("command", "channel"), [("play", "0"), ("play", "17"), ("jam", "0")])
def test_cli_channels_are_numbered_1_to_16(command: str, channel: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "--channel", channel, "--checkpoint", "/nonexistent.pt"] + (["--in", "x"] if command == "jam"
                                                                                 else [])
    assert main(args) == 1
    assert "MIDI channel 1..16" in capsys.readouterr().err


def test_jam_passthrough_plays_on_its_own_channel_and_is_released_on_stop(baby_checkpoint: Path) -> None:
    mm = load_music(baby_checkpoint)
    port = FakePort()
    echo = Echo(port, channel=1)  # the model plays on MIDI channel byte 0, the player's echo on 1
    capture = PhraseCapture(CaptureConfig(silence_s=0.5), passthrough=echo)
    with music_engine(mm) as engine:
        jam = Jam(mm, engine, capture, port, JamConfig("continuous", channel=0, seed=1), echo=echo)
        stop = threading.Event()
        worker = threading.Thread(target=jam.run, args=(stop,))
        worker.start()
        try:
            time.sleep(0.3)
            jam.feed(mido.Message("note_on", channel=0, note=61, velocity=90), time.monotonic())
            jam.feed(mido.Message("control_change", channel=0, control=64, value=127), time.monotonic())
            time.sleep(0.3)  # Ctrl-C with the key still down and the pedal pressed
        finally:
            stop.set()
            worker.join(timeout=10)
    echoed = [m for m in port.messages if m.channel == 1]
    assert [(m.type, m.note) for m in echoed if m.type.startswith("note")] == [("note_on", 61), ("note_off", 61)]
    assert echoed[-1].type == "control_change" and echoed[-1].value == 0  # the pedal lifted too
    assert {m.channel for m in port.messages} == {0, 1}
    assert not unmatched_note_ons(port.messages)
