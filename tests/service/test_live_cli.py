"""The live path for real: ``perfrnn play`` and jam mode against a JACK server (dummy backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from midi_io.files import read_notes, write_notes
from midi_io.notes import Note

from .conftest import JackReceiver, unmatched_note_ons  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.jack


def _receiver_for(port: str, timeout_s: float = 20.0) -> JackReceiver:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return JackReceiver(port)
        except StopIteration:  # the port is not there yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_play_sends_notes_at_musical_pace_and_ctrl_c_releases_all(jack_server: object, baby_checkpoint: Path) -> None:
    port = f"perfrnn-play-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "play", "--api", "jack", "--port-name", port,
                             "--checkpoint", str(baby_checkpoint), "--seed", "3", "--temperature", "1.0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rx = _receiver_for(port)
        assert rx.wait_for(20, timeout_s=60), f"only {rx.poll()} messages: {proc.stderr.read() if proc.poll() else ''}"
        t0 = time.monotonic()
        n0 = rx.poll()
        time.sleep(2.0)
        rate = (rx.poll() - n0) / (time.monotonic() - t0)
        assert 0.5 < rate < 400, f"{rate:.1f} messages/s is not a musical pace"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        deadline = time.monotonic() + 3  # what the player sent last may still be on its way through JACK
        while unmatched_note_ons(rx.messages()) and time.monotonic() < deadline:
            time.sleep(0.05)
        msgs = rx.messages()
        notes_on = [m for m in msgs if m.type == "note_on" and m.velocity > 0]
        assert notes_on and not unmatched_note_ons(msgs)
        rx.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def test_jam_answers_a_phrase_replayed_into_its_input(jack_server: object, baby_checkpoint: Path,
                                                      tmp_path: Path) -> None:
    from midi_io.capture import CaptureConfig, PhraseCapture
    from midi_io.player import Player, notes_to_messages
    from midi_io.ports import connect_output, open_input, open_virtual_output
    from performance_rnn.tasks.music.generate import load_music, music_engine
    from service.jam import Jam, JamConfig

    # the phrase comes from a real MIDI file, replayed in real time into the jam's input port
    phrase = [Note(60 + i, 90, 0.25 * i, 0.25 * i + 0.2) for i in range(6)]
    write_notes(phrase, tmp_path / "phrase.mid")
    replay = notes_to_messages(read_notes(tmp_path / "phrase.mid"))

    tag = uuid.uuid4().hex[:6]
    mm = load_music(baby_checkpoint)
    out = open_virtual_output(f"jam-out-{tag}", api="jack")
    capture = PhraseCapture(CaptureConfig(silence_s=0.5))
    engine = music_engine(mm).start()
    jam = Jam(mm, engine, capture, out, JamConfig("call", response_s=2.0, seed=1))
    inp = open_input(f"jam-in-{tag}", jam.feed, virtual=True, api="jack")
    rx = JackReceiver(out.name)
    rx.handshake(out)
    keyboard = connect_output(f"jam-in-{tag}", api="jack")
    stop = threading.Event()
    worker = threading.Thread(target=jam.run, args=(stop,), daemon=True)
    worker.start()
    try:
        with Player(keyboard) as player:
            player.schedule_many(replay)
            assert player.wait_idle(timeout_s=10)
        deadline = time.monotonic() + 60
        while jam.responses < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jam.responses == 1, "no answer to the phrase"
        # the answer's final note-offs left the player just now: give JACK a moment to deliver them
        deadline = time.monotonic() + 5
        while unmatched_note_ons(rx.messages()) and time.monotonic() < deadline:
            time.sleep(0.05)
        msgs = rx.messages()
        answer = [m for m in msgs if m.type == "note_on" and m.velocity > 0]
        assert answer, "the answer held no notes"
        assert not unmatched_note_ons(msgs)
    finally:
        stop.set()
        worker.join(timeout=10)
        inp.close()
        keyboard.close()
        engine.stop()
        rx.close()
        out.close()
