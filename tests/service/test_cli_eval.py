"""``perfrnn eval --midi DIR`` (NLL of every MIDI file under a folder) and ``--generated`` (listening figures)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from midi_io.files import read_notes, write_notes
from midi_io.notes import Note
from performance_rnn.codecs.performance import PerformanceCodecConfig, encode, notes_to_events
from service.cli import main


def _piece(seed: int, seconds: float = 8.0) -> list[Note]:
    notes, t, k = [], 0.25 * seed, 0
    while t < seconds:
        pitch = 55 + (seed * 5 + k * 7) % 24
        notes.append(Note(pitch, 40 + (k * 13) % 80, t, t + 0.3))
        if k % 4 == 0:
            notes += [Note(pitch - 12 + off, 60, t + 0.01 * i, t + 1.0) for i, off in enumerate((0, 4, 7))]
        t, k = t + 0.2 + 0.05 * (k % 3), k + 1
    return notes


@pytest.fixture
def midi_dir(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    for i, path in enumerate([tmp_path / "a.mid", tmp_path / "b.MIDI", tmp_path / "sub" / "c.mid"]):
        write_notes(_piece(i), path)
    (tmp_path / "notes.txt").write_text("not MIDI, not looked at")
    (tmp_path / "sub" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")  # truncated
    return tmp_path


def _last_json(capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_eval_midi_folder(baby_checkpoint: Path, midi_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(baby_checkpoint), "--midi", str(midi_dir), "--window", "64"]) == 0
    out, err = _last_json(capsys)
    assert isinstance(out["model_nll"], float) and math.isfinite(out["model_nll"]) and out["model_nll"] > 0
    assert out["files"] == 3 and out["skipped"] == 1
    assert "broken.mid" in err and len([line for line in err.splitlines() if "warning: skipped" in line]) == 1
    codec = PerformanceCodecConfig()
    expected = sum(len(encode(notes_to_events(read_notes(p), codec), codec)) - 1
                   for p in (midi_dir / "a.mid", midi_dir / "b.MIDI", midi_dir / "sub" / "c.mid"))
    assert out["events"] == expected  # every event but each file's first predicted once, across windows
    assert "listening" not in out


@pytest.mark.parametrize(("weights", "tolerance"), [("float32", 1e-4), ("int8", 0.05)])
def test_eval_through_the_inference_step(baby_checkpoint: Path, midi_dir: Path, capsys: pytest.CaptureFixture[str],
                                         weights: str, tolerance: float) -> None:
    """--weights scores one step at a time through the inference step: float32 agrees with the training model's
    forward, int8 stays close to it."""
    from performance_rnn.fast_step import int8_available

    if weights == "int8" and not int8_available():
        pytest.skip("torch's x86/fbgemm int8 kernels are not available")
    args = ["eval", "--checkpoint", str(baby_checkpoint), "--midi", str(midi_dir), "--window", "64"]
    assert main(args) == 0
    reference, _ = _last_json(capsys)
    assert main([*args, "--weights", weights]) == 0
    out, _ = _last_json(capsys)
    assert out["events"] == reference["events"]
    assert abs(out["model_nll"] - reference["model_nll"]) < tolerance


def test_eval_midi_generated(baby_checkpoint: Path, midi_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(baby_checkpoint), "--midi", str(midi_dir), "--generated", "2",
                 "--seconds", "3"]) == 0
    out, _ = _last_json(capsys)
    fig = out["listening"]
    assert fig["clips"] == {"generated": 2, "real": 6}  # two full 3 s clips per 8 s piece
    assert 0.0 <= fig["histogram_overlap"] <= 1.0
    for side in ("generated", "real"):
        assert {"notes_per_s", "polyphony", "grid16_share", "chord_spread", "ringing_to_guard"} <= set(fig[side])
        assert len(fig[side]["pitch_class_hist"]) == 12
    assert fig["real"]["notes_per_s"] > 0 and fig["real"]["chord_spread"] > 0


def test_eval_split_still_reports_baselines(baby_checkpoint: Path, music_dataset: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(baby_checkpoint), "--data", str(music_dataset), "--max-order", "2",
                 "--window", "64"]) == 0
    out, _ = _last_json(capsys)
    assert out["split"] == "test" and out["ngram_order"] in (1, 2)
    assert all(math.isfinite(out[k]) for k in ("model_nll", "model_nll_with_controls", "ngram_nll", "unigram_nll"))


@pytest.mark.parametrize(("extra", "message"), [
    (["--data", "x"], "drop --data"),
    (["--split", "test"], "drop --split"),
    (["--seconds", "3"], "only for generated clips"),
    (["--generated", "-1"], "--generated must be >= 0"),
])
def test_eval_rejects_flag_combinations(baby_checkpoint: Path, midi_dir: Path, capsys: pytest.CaptureFixture[str],
                                        extra: list[str], message: str) -> None:
    assert main(["eval", "--checkpoint", str(baby_checkpoint), "--midi", str(midi_dir), *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
