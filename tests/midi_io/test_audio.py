"""midi_io.audio: MIDI -> WAV/FLAC/Ogg through the real fluidsynth program (skipped, with the reason, without it;
``.ci/run`` installs fluidsynth and fluid-soundfont-gm), and the errors a user without it meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midi_io.audio import (
    SOUNDFONT_ENV,
    AudioConfig,
    check_soundfont,
    find_program,
    find_soundfont,
    render_file,
    render_midi_bytes,
    render_to_path,
)
from midi_io.errors import AudioRenderError, AudioUnavailable
from midi_io.files import notes_to_midi_bytes, write_notes
from midi_io.notes import Note
from midi_io.output import OutputRefused
from testing import audio_check

SKIP = audio_check.skip_reason()
needs_fluidsynth = pytest.mark.skipif(SKIP is not None, reason=str(SKIP))

# isolated notes at uneven times (not on FluidSynth's 64-sample block grid), across the keyboard and dynamics
SCALE = [Note(40 + 5 * i, 50 + 7 * i, 0.3 + 0.4 * i + 0.0123 * i, 0.5 + 0.4 * i + 0.0123 * i) for i in range(10)]


@needs_fluidsynth
def test_isolated_notes_sound_at_their_times(tmp_path: Path) -> None:
    write_notes(SCALE, tmp_path / "scale.mid")
    fmt = render_to_path(tmp_path / "scale.mid", tmp_path / "scale.wav")
    x, sr, container = audio_check.read_audio(tmp_path / "scale.wav")
    assert (fmt, container, sr) == ("wav", "WAV", 44100)
    assert audio_check.rms_dbfs(x) > -50.0
    found = audio_check.audio_onsets(x, sr)
    a = audio_check.align(found, [n.start_s for n in SCALE])
    assert a.recall == 1.0 and a.within >= 0.9, a  # every note found within 30 ms, (almost) nothing else
    assert 0.0 <= a.signed_median_ms < 20.0, a
    # the sound itself (dry: no reverb or chorus) starts within 15 ms of each note-on: the first sample above
    # twice the loudest of the 30 ms before (the note before is still decaying) and above -60 dBFS
    dry = render_midi_bytes((tmp_path / "scale.mid").read_bytes(), "wav", AudioConfig(reverb=False, chorus=False))
    y, sr, _ = audio_check.read_audio(dry)
    for n in SCALE:
        start = int((n.start_s - 0.002) * sr)
        before = float(np.max(np.abs(y[start - int(0.03 * sr):start])))
        first = start + int(np.argmax(np.abs(y[start:start + sr // 10]) > max(2 * before, 1e-3)))
        assert 0.0 <= first / sr - n.start_s <= 0.015, (n, first / sr - n.start_s)


@needs_fluidsynth
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_each_format_is_readable_audio_of_the_right_length(fmt: str) -> None:
    midi = notes_to_midi_bytes(SCALE[:3], end_s=2.0)
    data = render_midi_bytes(midi, fmt)
    assert data[:4] == audio_check.MAGIC[fmt]
    x, sr, container = audio_check.read_audio(data)
    assert container == {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[fmt]
    assert 2.0 <= len(x) / sr < 6.0  # the file's length plus the release and reverb tail
    assert audio_check.rms_dbfs(x) > -50.0


@needs_fluidsynth
def test_fluidsynth_failure_is_an_error_not_a_silent_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.sf2"  # a SoundFont header with nothing behind it
    fake.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    write_notes(SCALE[:1], tmp_path / "in.mid")
    with pytest.raises(AudioRenderError, match="FluidSynth failed"):
        render_file(tmp_path / "in.mid", tmp_path / "out.wav", "wav", AudioConfig(soundfont=str(fake)))
    with pytest.raises(AudioRenderError):
        render_to_path(tmp_path / "in.mid", tmp_path / "kept.wav", AudioConfig(soundfont=str(fake)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.sf2", "in.mid", "out.wav"]  # no temp file left


def test_without_fluidsynth_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AudioUnavailable, match="apt-get install fluidsynth fluid-soundfont-gm") as info:
        find_program(AudioConfig(program="fluidsynth-not-installed"))
    assert "brew install fluid-synth" in str(info.value) and "\n" not in str(info.value)


def test_soundfont_lookup_explicit_env_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    font = tmp_path / "piano.sf2"
    font.write_bytes(b"RIFF\x00\x00\x00\x00sfbk" + b"\x00" * 16)
    assert find_soundfont(font) == font
    monkeypatch.setenv(SOUNDFONT_ENV, str(font))
    assert find_soundfont() == font
    monkeypatch.setenv(SOUNDFONT_ENV, str(tmp_path / "missing.sf2"))
    with pytest.raises(AudioUnavailable, match=f"{SOUNDFONT_ENV} .*missing.sf2: cannot read"):
        find_soundfont()
    (tmp_path / "notes.txt").write_text("not a soundfont")
    with pytest.raises(AudioUnavailable, match="not a SoundFont"):
        check_soundfont(tmp_path / "notes.txt")


def test_no_soundfont_anywhere_says_how_to_install_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from midi_io import audio

    monkeypatch.delenv(SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(audio, "SOUNDFONT_PATHS", ("/nonexistent/a.sf2",))
    with pytest.raises(AudioUnavailable, match=r"no General MIDI SoundFont|none was found.*fluid-soundfont-gm"):
        find_soundfont()


def test_unknown_audio_extension_is_refused_before_synthesis(tmp_path: Path) -> None:
    write_notes(SCALE[:1], tmp_path / "in.mid")
    with pytest.raises(OutputRefused, match=r"unknown audio extension '\.mp3'"):
        render_to_path(tmp_path / "in.mid", tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()


@pytest.mark.parametrize("bad", [{"sample_rate": 1000}, {"gain": 0.0}, {"gain": 11.0}, {"timeout_s": 0.0}])
def test_config_is_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AudioConfig(**bad)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        AudioConfig().gain = 1.0  # type: ignore[misc]
