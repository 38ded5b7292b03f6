"""Codec parity with Magenta's note_seq (the oracle): synthetic files that exercise each rule, random token
sequences for the decoder, and real human performances (MAESTRO files from the miditok sdist, fetched by
.ci/run, and ASAP when present)."""

from __future__ import annotations

import io
import logging
import os
import random
import warnings
from pathlib import Path

import mido
import pytest

from midi_io.files import read_notes
from performance_rnn.codecs.performance import (
    PerformanceCodecConfig,
    decode,
    encode,
    events_to_notes,
    notes_to_events,
)

note_seq = pytest.importorskip("note_seq", reason="note-seq (the dev extra) is the codec oracle")
from note_seq import performance_lib, sequences_lib  # noqa: E402
from note_seq.performance_encoder_decoder import PerformanceOneHotEncoding  # noqa: E402

logging.getLogger("absl").setLevel(logging.ERROR)
CFG = PerformanceCodecConfig()
ENC = PerformanceOneHotEncoding(num_velocity_bins=32, max_shift_steps=100)
ROOT = Path(__file__).resolve().parents[3]
TPB = 1000  # ticks per beat at 120 bpm: one tick is 0.5 ms, so half-step (5 ms) cases are exact in ticks


def oracle_ids(data: bytes) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ns = note_seq.midi_to_note_sequence(data)
    ns = sequences_lib.apply_sustain_control_changes(ns)
    keep = [n for n in ns.notes if not n.is_drum]
    del ns.notes[:]
    ns.notes.extend(keep)
    q = sequences_lib.quantize_note_sequence_absolute(ns, CFG.steps_per_second)
    perf = performance_lib.Performance(q, num_velocity_bins=CFG.num_velocity_bins, max_shift_steps=CFG.max_shift_steps)
    return [ENC.encode_event(e) for e in perf]


def our_ids(data: bytes) -> list[int]:
    return encode(notes_to_events([n for n in read_notes(data) if not n.is_drum], CFG), CFG)


def midi(*tracks: list[tuple[float, str, int, int, int]]) -> bytes:
    """Tracks of (time_ms, kind, channel, a, b) -> SMF bytes. kind: 'on' (pitch, velocity), 'off' (pitch),
    'cc' (number, value). Times are absolute milliseconds (multiples of 0.5)."""
    mf = mido.MidiFile(ticks_per_beat=TPB)
    for i, events in enumerate(tracks):
        tr = mido.MidiTrack()
        if i == 0:
            tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
        now = 0
        for t_ms, kind, ch, a, b in sorted(events, key=lambda e: e[0]):
            tick = round(t_ms * 2)
            delta, now = tick - now, tick
            if kind == "on":
                tr.append(mido.Message("note_on", channel=ch, note=a, velocity=b, time=delta))
            elif kind == "off":
                tr.append(mido.Message("note_off", channel=ch, note=a, velocity=0, time=delta))
            else:
                tr.append(mido.Message("control_change", channel=ch, control=a, value=b, time=delta))
        mf.tracks.append(tr)
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def note(t0: float, t1: float, pitch: int, velocity: int = 80, ch: int = 0) -> list[tuple]:
    return [(t0, "on", ch, pitch, velocity), (t1, "off", ch, pitch, 0)]


def pedal(t: float, down: bool, ch: int = 0) -> tuple:
    return (t, "cc", ch, 64, 127 if down else 0)


RULES = {
    # times that fall exactly half a step: note_seq rounds half up
    "rounding_half_up": note(5, 15, 60) + note(25, 1005, 62) + note(1015, 1025, 64) + note(34.5, 44.5, 65),
    # within one step, events follow the notes' (start, pitch) order, offs and ons interleaved
    "order_within_step": note(0, 500, 64) + note(1, 500, 60) + note(300, 501, 67) + note(500, 900, 59)
    + note(499, 700, 72),
    # two notes of one pitch sounding at once (two channels): each keeps its own on and off
    "same_pitch_overlap": note(0, 1000, 60, 90, 0) + note(500, 1500, 60, 40, 1),
    # the pedal goes down and is never lifted: notes run to the end of the sequence
    "sustain_never_lifted": [pedal(100, True)] + note(0, 300, 60) + note(400, 600, 64) + note(700, 2000, 67),
    # pedal up and down in the same tick
    "pedal_up_down_same_tick": [pedal(100, True), pedal(800, False), pedal(800, True), pedal(1500, False)]
    + note(0, 300, 60) + note(400, 800, 64) + note(900, 1000, 67),
    # a key re-struck while the pedal holds it: the first note ends at the new onset
    "restrike_under_pedal": [pedal(0, True), pedal(2000, False)] + note(100, 200, 60) + note(600, 700, 60)
    + note(600, 650, 72) + note(600, 610, 72, ch=1),
    # a note that quantizes to no length gets one step; one with no length at all too
    "zero_length": note(100, 102, 60) + note(200, 200, 62) + note(300, 304, 64),
    # gaps longer than one TIME_SHIFT chain shifts; velocities change bins
    "long_gap_and_velocities": note(0, 100, 60, 1) + note(2550, 2600, 61, 127) + note(5000, 5001, 62, 64),
    # drums (channel 10) are dropped; other channels merge; each channel has its own pedal
    "drums_and_channels": note(0, 400, 36, 100, 9) + note(0, 300, 60, 70, 0) + note(50, 200, 64, 70, 1)
    + [pedal(100, True, 1), pedal(900, False, 1)],
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_synthetic_rule_files_encode_exactly_as_note_seq(name: str) -> None:
    data = midi(RULES[name])
    expected = oracle_ids(data)
    assert expected, "the oracle produced no events: the case is broken"
    assert our_ids(data) == expected


def test_sustain_in_its_own_track_applies_to_its_channel() -> None:
    data = midi(note(0, 300, 60) + note(100, 200, 64), [pedal(50, True), pedal(1000, False)])
    assert our_ids(data) == oracle_ids(data)


def _oracle_notes(ids: list[int]) -> list[tuple[int, int, float, float]]:
    perf = performance_lib.Performance(steps_per_second=CFG.steps_per_second, num_velocity_bins=32,
                                       max_shift_steps=CFG.max_shift_steps)
    for i in ids:
        perf.append(ENC.decode_event(i))
    ns = perf.to_sequence(max_note_duration=CFG.max_note_duration_s)
    return sorted((n.pitch, n.velocity, round(n.start_time, 6), round(n.end_time, 6)) for n in ns.notes)


def _our_notes(ids: list[int]) -> list[tuple[int, int, float, float]]:
    notes = events_to_notes(decode(ids, CFG), CFG, default_velocity=64)
    return sorted((n.pitch, n.velocity, round(n.start_s, 6), round(n.end_s, 6)) for n in notes)


@pytest.mark.parametrize("seed", range(30))
def test_decoding_random_token_streams_matches_note_seq(seed: int) -> None:
    """Adversarial streams over a few pitches: note-offs without note-ons, re-strikes, zero-length notes, notes
    held past the 5 s guard with a re-strike in between (a NOTE_OFF closes the oldest open note)."""
    rng = random.Random(seed)
    pitches = [60, 61, 62]
    ids = [356 + 15]  # a velocity first, as note_seq's decoder starts with none of ours
    for _ in range(300):
        r = rng.random()
        if r < 0.3:
            ids.append(rng.choice(pitches))
        elif r < 0.6:
            ids.append(128 + rng.choice(pitches))
        elif r < 0.9:
            ids.append(256 + rng.choice([0, 4, 49, 99]))
        else:
            ids.append(356 + rng.randrange(32))
    assert _our_notes(ids) == _oracle_notes(ids)


def test_streaming_decoder_gives_the_same_notes() -> None:
    from performance_rnn.codecs.performance import NoteDecoder

    rng = random.Random(7)
    ids = [rng.choice([60, 188, 61, 189, 256 + 99, 256 + 30, 370]) for _ in range(400)]
    dec = NoteDecoder(CFG, default_velocity=64)
    streamed = [n for e in decode(ids, CFG) for n in dec.feed(e)] + dec.finish()
    assert sorted(streamed, key=lambda n: (n.start_s, n.pitch, n.end_s)) == sorted(
        events_to_notes(decode(ids, CFG), CFG), key=lambda n: (n.start_s, n.pitch, n.end_s))


def _real_files() -> list[Path]:
    dirs = [os.environ.get("PERFRNN_TEST_MIDI_DIR", str(ROOT / ".cache" / "test-midi")),
            str(ROOT.parent / "shared" / "data" / "asap")]
    files = sorted(p for d in dirs if Path(d).is_dir() for p in Path(d).rglob("*") if p.suffix in (".mid", ".midi"))
    random.Random(0).shuffle(files)
    return files[:24]


REAL = _real_files()


@pytest.mark.skipif(not REAL, reason="no real performances: .ci/run fetches MAESTRO files from the miditok sdist "
                                     "into .cache/test-midi (or set PERFRNN_TEST_MIDI_DIR)")
@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_performances_encode_exactly_as_note_seq(path: Path) -> None:
    data = path.read_bytes()
    assert our_ids(data) == oracle_ids(data)
