import io
import time
from collections.abc import Callable
from pathlib import Path

import mido
import pytest

from midi_io.errors import MidiDecodeError
from midi_io.files import apply_sustain_pedal, notes_to_midi_bytes, read_notes, write_notes
from midi_io.notes import Note

# A type-0 file, 96 ticks per beat, tempo 500000 us/beat (120 bpm): C4 on at 0, off at 96 ticks (0.5 s).
TYPE0 = bytes.fromhex(
    "4d546864 00000006 0000 0001 0060"  # MThd, length 6, format 0, 1 track, 96 ticks per beat
    "4d54726b 00000013"  # MTrk, 19 bytes
    "00 ff5103 07a120"  # tempo 500000
    "00 903c64"  # note on C4 velocity 100
    "60 803c00"  # after 96 ticks: note off
    "00 ff2f00"  # end of track
)


def test_reads_a_type0_hexdump() -> None:
    (note,) = read_notes(TYPE0, name="hex.mid")
    assert (note.pitch, note.velocity) == (60, 100)
    assert note.start_s == pytest.approx(0.0) and note.end_s == pytest.approx(0.5)


def test_tempo_map_is_applied(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tempo, notes = mido.MidiTrack(), mido.MidiTrack()
    tempo += [mido.MetaMessage("set_tempo", tempo=500000, time=0),
              mido.MetaMessage("set_tempo", tempo=1000000, time=480)]
    notes += [mido.Message("note_on", note=60, velocity=90, time=480), mido.Message("note_off", note=60, time=480)]
    mid.tracks += [tempo, notes]
    buf = io.BytesIO()
    mid.save(file=buf)
    (note,) = read_notes(buf.getvalue())
    assert note.start_s == pytest.approx(0.5) and note.end_s == pytest.approx(1.5)  # second beat at 60 bpm


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    notes = [Note(60, 100, 0.0, 0.5), Note(64, 40, 0.25, 1.0), Note(67, 127, 1.0, 3.3)]
    write_notes(notes, tmp_path / "x.mid")
    back = read_notes(tmp_path / "x.mid")
    assert [(n.pitch, n.velocity) for n in back] == [(60, 100), (64, 40), (67, 127)]
    for a, b in zip(notes, back, strict=True):
        assert a.start_s == pytest.approx(b.start_s, abs=2e-3) and a.end_s == pytest.approx(b.end_s, abs=2e-3)


def test_sustain_pedal_lengthens_notes() -> None:
    notes = [(60, 80, 0.0, 0.5), (64, 80, 1.0, 1.2), (60, 80, 1.5, 1.6), (67, 80, 3.0, 3.5)]
    pedal = [(0.2, True), (2.0, False)]
    out = {(p, s): e for p, _, s, e in apply_sustain_pedal(notes, pedal)}
    assert out[(60, 0.0)] == 1.5  # held by the pedal until C is struck again
    assert out[(64, 1.0)] == 2.0  # held until the pedal lifts
    assert out[(60, 1.5)] == 2.0
    assert out[(67, 3.0)] == 3.5  # pedal up: unchanged


def test_sustain_is_read_from_cc64() -> None:
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track += [mido.Message("control_change", control=64, value=127, time=0),
              mido.Message("note_on", note=60, velocity=80, time=0), mido.Message("note_off", note=60, time=240),
              mido.Message("control_change", control=64, value=0, time=720)]
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    (held,) = read_notes(buf.getvalue())
    (dry,) = read_notes(buf.getvalue(), apply_sustain=False)
    assert held.end_s == pytest.approx(1.0) and dry.end_s == pytest.approx(0.25)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "no 'MThd'"),
    (b"RIFF....WAVEfmt ", "no 'MThd'"),
    (TYPE0[:30], "cannot parse"),  # truncated in the middle of the track
    (bytes.fromhex("4d546864 00000006 0001 0001 0000"), "cannot parse"),  # zero ticks per beat, no track
])
def test_unreadable_midi_raises_the_clear_error(data: bytes, reason: str) -> None:
    with pytest.raises(MidiDecodeError, match=f"upload.mid: .*{reason}"):
        read_notes(data, name="upload.mid")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(MidiDecodeError, match=r"nope\.mid: cannot read"):
        read_notes(tmp_path / "nope.mid")


def test_notes_to_midi_bytes_is_deterministic() -> None:
    notes = [Note(60, 100, 0.0, 0.5)]
    assert notes_to_midi_bytes(notes) == notes_to_midi_bytes(notes)


def test_a_large_pedal_heavy_file_parses_in_bounded_time(dense_midi: Callable[..., bytes]) -> None:
    """40k notes with the pedal flipping after each (the shape that took minutes when every pedal change
    rescanned every note) parse in about a second: the bound is generous, the old cost was quadratic."""
    data = dense_midi(40_000, seconds=60.0, pedal=True)
    assert len(data) > 400_000
    t0 = time.monotonic()
    notes = read_notes(data, name="pedal.mid")
    assert time.monotonic() - t0 < 30.0
    assert len(notes) == 40_000
