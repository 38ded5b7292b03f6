"""CLI inputs are bounded as the service's are: a tiny primer file that describes hours of music is trimmed to
what a primer keeps; out-of-range controls are one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from midi_io.files import read_notes
from service.cli import main


def hours_long_primer(path: Path) -> int:
    """A ~60-byte file: one note held for about 1.7e8 s at the slowest tempo, then one short note at the end.
    Read whole, its events would be billions of time shifts."""
    mid = mido.MidiFile(type=0, ticks_per_beat=1)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=0xFFFFFF, time=0))  # 16.8 s a beat
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.Message("note_on", note=64, velocity=90, time=9_999_990))  # pretty_midi reads up to 1e7 ticks
    track.append(mido.Message("note_off", note=60, velocity=0, time=1))
    track.append(mido.Message("note_off", note=64, velocity=0, time=0))
    mid.save(str(path))
    return path.stat().st_size


def test_a_tiny_primer_describing_hours_of_music_is_trimmed(tmp_path: Path, baby_checkpoint: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    primer = tmp_path / "hours.mid"
    assert hours_long_primer(primer) < 80
    assert max(n.end_s for n in read_notes(primer)) > 1e8
    out = tmp_path / "o.mid"
    rc = main(["generate", "--checkpoint", str(baby_checkpoint), "--primer", str(primer), "--include-primer",
               "--seconds", "2", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "kept the last 1 of 2 notes" in err
    notes = read_notes(out)
    assert notes[0].pitch == 64 and max(n.end_s for n in notes) < 60
