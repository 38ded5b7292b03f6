"""Jam's call mode without JACK: the phrase is fed to the model while it is played, and the answer continues
that very stream once the phrase is judged over (a too-short phrase is let go with its stream)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mido

from midi_io.capture import CaptureConfig, PhraseCapture
from performance_rnn.tasks.music.generate import load_music, music_engine
from service.jam import Jam, JamConfig
from testing.waiting import wait_until


class RecordingPort:
    def __init__(self) -> None:
        self.sent: list[mido.Message] = []

    def send(self, msg: mido.Message) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        pass


def _play(jam: Jam, pitches: list[int]) -> None:
    for p in pitches:
        jam.feed(mido.Message("note_on", note=p, velocity=80), time.monotonic())
        time.sleep(0.03)
        jam.feed(mido.Message("note_off", note=p, velocity=0), time.monotonic())


def test_call_mode_answers_from_the_stream_that_heard_the_phrase(baby_checkpoint: Path) -> None:
    mm = load_music(baby_checkpoint)
    engine = music_engine(mm).start()
    out = RecordingPort()
    jam = Jam(mm, engine, PhraseCapture(CaptureConfig(silence_s=0.25, min_notes=3)), out,
              JamConfig("call", response_s=1.0, seed=1))
    stop = threading.Event()
    worker = threading.Thread(target=jam.run, args=(stop,), daemon=True)
    worker.start()
    try:
        _play(jam, [60, 62])  # too short for a call
        short = jam.listening
        assert short is not None and engine.active == 1  # opened at the first note, paused
        assert wait_until(lambda: jam.listening is None and engine.active == 0)  # let go with the phrase
        assert short.closed.is_set() and jam.responses == 0

        _play(jam, [60, 64, 67, 72])
        heard = jam.listening
        assert heard is not None and heard.tokens.empty()  # it has the phrase; nothing generated yet
        assert wait_until(lambda: jam.responses == 1)
        assert jam._live is not None and jam._live.stream is heard  # the answer continued that stream
        ons = [m for m in out.sent if m.type == "note_on" and m.velocity > 0]
        offs = [m for m in out.sent if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)]
        assert ons and len(offs) >= len(ons)  # an answer, and every note of it released
    finally:
        stop.set()
        worker.join(timeout=10)
        engine.stop()
