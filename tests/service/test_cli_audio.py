"""``perfrnn generate -o out.wav`` / ``perfrnn render`` end to end through the real fluidsynth program, and safe
file output for every ``-o`` (generate, render, strokes). Audio tests skip with the reason without FluidSynth;
``.ci/run`` installs it (fluidsynth + fluid-soundfont-gm)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from midi_io.files import read_notes, write_notes
from midi_io.notes import Note
from service.cli import main
from testing import audio_check

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "music.pt"


SKIP = audio_check.skip_reason()
needs_fluidsynth = pytest.mark.skipif(SKIP is not None, reason=str(SKIP))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@needs_fluidsynth
def test_generate_wav_is_audible_and_its_onsets_line_up_with_the_notes(tmp_path: Path, baby_checkpoint: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ck = str(SHIPPED if SHIPPED.exists() else baby_checkpoint)
    args = ["generate", "--checkpoint", ck, "--seconds", "10", "--seed", "1"]
    assert main([*args, "-o", str(tmp_path / "a.wav")]) == 0
    assert main([*args, "-o", str(tmp_path / "a.mid")]) == 0  # the same seed: the notes the WAV was made from
    assert _files(tmp_path) == ["a.mid", "a.wav"]
    x, sr, container = audio_check.read_audio(tmp_path / "a.wav")
    assert container == "WAV" and sr == 44100 and len(x) / sr >= 10.0
    rms = audio_check.rms_dbfs(x)
    assert rms > -50.0
    notes = [n.start_s for n in read_notes(tmp_path / "a.mid")]
    assert len(notes) >= 10
    found = audio_check.audio_onsets(x, sr)
    a = audio_check.align(found, notes)
    with capsys.disabled():
        print(f"\ngenerate -o a.wav: RMS {rms:.1f} dBFS, {len(notes)} notes, {a.detected} onsets detected, "
              f"{a.within:.0%} within 30 ms of a note-on, |error| median {a.median_ms:.1f} ms p90 {a.p90_ms:.1f} ms, "
              f"signed median {a.signed_median_ms:+.1f} ms, {a.recall:.0%} of note-ons found")
    assert a.detected >= 10 and a.within >= 0.9 and a.median_ms <= 20.0, a
    # the check can fail: against the notes moved by 150 ms the same onsets line up only by chance
    assert audio_check.align(found, [t + 0.15 for t in notes]).within < a.within - 0.3


@needs_fluidsynth
def test_render_command_writes_each_format(tmp_path: Path) -> None:
    write_notes([Note(60, 90, 0.1, 0.6), Note(64, 90, 0.6, 1.2), Note(67, 100, 1.2, 2.0)], tmp_path / "in.mid")
    for fmt, container in (("flac", "FLAC"), ("ogg", "OGG"), ("wav", "WAV")):
        assert main(["render", str(tmp_path / "in.mid"), "-o", str(tmp_path / f"out.{fmt}")]) == 0
        x, sr, got = audio_check.read_audio(tmp_path / f"out.{fmt}")
        assert got == container and len(x) / sr >= 2.0 and audio_check.rms_dbfs(x) > -50.0
    assert _files(tmp_path) == ["in.mid", "out.flac", "out.ogg", "out.wav"]


@needs_fluidsynth
def test_generate_num_outputs_as_ogg(tmp_path: Path, baby_checkpoint: Path) -> None:
    assert main(["generate", "--checkpoint", str(baby_checkpoint), "-o", str(tmp_path / "o.ogg"), "--seconds", "2",
                 "--num-outputs", "2", "--primer-pitches", "60,64,67", "--include-primer"]) == 0
    assert _files(tmp_path) == ["o-1.ogg", "o-2.ogg"]
    assert (tmp_path / "o-1.ogg").read_bytes()[:4] == b"OggS"


@pytest.mark.parametrize("command", ["generate", "render"])
def test_unknown_extension_is_one_clear_line_exit_2_nothing_written(command: str, tmp_path: Path,
                                                                      baby_checkpoint: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_notes([Note(60, 90, 0.0, 0.5)], tmp_path / "in.mid")
    args = (["generate", "--checkpoint", str(baby_checkpoint), "--seconds", "1"] if command == "generate"
            else ["render", str(tmp_path / "in.mid")])
    assert main([*args, "-o", str(tmp_path / "a.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown" in err and "'.xyz'" in err and ".wav" in err and "Traceback" not in err
    assert _files(tmp_path) == ["in.mid"]


def test_without_fluidsynth_audio_says_how_to_install_and_midi_still_works(
        tmp_path: Path, baby_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no fluidsynth on PATH
    base = ["generate", "--checkpoint", str(baby_checkpoint), "--seconds", "1"]
    assert main([*base, "-o", str(tmp_path / "a.wav")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install fluidsynth fluid-soundfont-gm" in err and "brew install" in err
    assert _files(tmp_path) == []  # refused before generating: nothing written
    assert main([*base, "-o", str(tmp_path / "a.mid")]) == 0
    assert read_notes(tmp_path / "a.mid") is not None


@pytest.mark.parametrize("target", ["symlink", "fifo", "directory"])
def test_generate_refuses_special_targets_unless_forced(target: str, tmp_path: Path, baby_checkpoint: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real.mid"
    real.write_bytes(b"keep me")
    path = tmp_path / "out.mid"
    if target == "symlink":
        path.symlink_to(real)
    elif target == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    base = ["generate", "--checkpoint", str(baby_checkpoint), "--seconds", "1", "-o", str(path)]
    assert main(base) == 2
    assert "refusing" in capsys.readouterr().err or target == "directory"
    assert real.read_bytes() == b"keep me" and _files(tmp_path) == ["out.mid", "real.mid"]
    if target == "symlink":
        assert main([*base, "--force"]) == 0  # follows the link; the link stays
        assert path.is_symlink() and read_notes(real) is not None


def test_generate_to_dev_null_keeps_the_device(baby_checkpoint: Path) -> None:
    base = ["generate", "--checkpoint", str(baby_checkpoint), "--seconds", "1", "-o", "/dev/null"]
    assert main(base) == 2
    assert main([*base, "--force"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_strokes_output_is_written_safely(tmp_path: Path, checkpoints_dir: Path) -> None:
    base = ["strokes", "--checkpoint", str(checkpoints_dir / "strokes.pt"), "-n", "2"]
    assert main([*base, "-o", str(tmp_path / "a.txt")]) == 2  # unknown extension
    (tmp_path / "link.svg").symlink_to(tmp_path / "real.svg")
    assert main([*base, "-o", str(tmp_path / "link.svg")]) == 2
    assert main([*base, "-o", str(tmp_path / "a.svg")]) == 0
    assert (tmp_path / "a.svg").read_text().startswith("<svg")
    assert _files(tmp_path) == ["a.svg", "link.svg"]
