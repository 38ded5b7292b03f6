"""``perfrnn generate`` end to end: real MIDI out, determinism by seed, primers, clear errors."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest

from midi_io.files import read_notes, write_notes
from midi_io.notes import Note
from service.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "music.pt"


def _checkpoint(baby_checkpoint: Path) -> Path:
    return SHIPPED if SHIPPED.exists() else baby_checkpoint


def test_generate_writes_20s_and_is_deterministic(tmp_path: Path, baby_checkpoint: Path) -> None:
    ck = str(_checkpoint(baby_checkpoint))
    for name in ("a.mid", "b.mid"):
        assert main(["generate", "--checkpoint", ck, "-o", str(tmp_path / name), "--seconds", "20", "--seed", "1"]) == 0
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "a.mid"))
    assert pm.get_end_time() >= 20.0 and len(pm.instruments[0].notes) > 0
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert main(["generate", "--checkpoint", ck, "-o", str(tmp_path / "c.mid"), "--seconds", "20", "--seed", "2"]) == 0
    assert (tmp_path / "c.mid").read_bytes() != (tmp_path / "a.mid").read_bytes()


def test_primer_is_excluded_unless_asked(tmp_path: Path, baby_checkpoint: Path) -> None:
    ck = str(baby_checkpoint)
    primer = [Note(100, 100, 0.0, 2.0), Note(101, 100, 2.0, 3.0)]  # pitches the baby model rarely plays
    write_notes(primer, tmp_path / "primer.mid")
    base = ["generate", "--checkpoint", ck, "--seconds", "4", "--seed", "1", "--primer", str(tmp_path / "primer.mid")]
    assert main([*base, "-o", str(tmp_path / "x.mid")]) == 0
    assert main([*base, "-o", str(tmp_path / "y.mid"), "--include-primer"]) == 0
    with_primer = read_notes(tmp_path / "y.mid")
    without = read_notes(tmp_path / "x.mid")
    assert [(n.pitch, round(n.start_s, 2)) for n in with_primer[:2]] == [(100, 0.0), (101, 2.0)]
    assert len(with_primer) == len(without) + 2
    assert max(n.end_s for n in without) <= 4.0 + 1e-6


def test_controls_beam_and_num_outputs(tmp_path: Path, baby_checkpoint: Path) -> None:
    ck = str(baby_checkpoint)
    assert main(["generate", "--checkpoint", ck, "-o", str(tmp_path / "o.mid"), "--seconds", "3", "--num-outputs",
                 "3", "--key", "D minor", "--density", "8", "--primer-pitches", "60,64,67"]) == 0
    assert sorted(p.name for p in tmp_path.glob("o-*.mid")) == ["o-1.mid", "o-2.mid", "o-3.mid"]
    assert main(["generate", "--checkpoint", ck, "-o", str(tmp_path / "beam.mid"), "--seconds", "2",
                 "--beam-size", "3"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--primer", "{bad}"], "cannot parse MIDI"),
    (["--primer-pitches", "60,x"], "comma-separated"),
    (["--primer-pitches", "200"], "0..127"),
    (["--key", "H#"], "unknown key"),
    (["--temperature", "-1"], "temperature"),
    (["--seconds", "0"], "seconds"),
    (["--checkpoint", "{missing}"], "no such checkpoint"),
])
def test_bad_input_is_one_clear_line(args: list[str], message: str, tmp_path: Path, baby_checkpoint: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\xff\xff")
    args = [a.replace("{bad}", str(bad)).replace("{missing}", str(tmp_path / "nope.pt")) for a in args]
    rc = main(["generate", "--checkpoint", str(baby_checkpoint), "-o", str(tmp_path / "o.mid"), *args])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err


def test_weights_choose_the_inference_step(tmp_path: Path, baby_checkpoint: Path) -> None:
    """--weights float32 keeps the training model's numbers; int8 (where the CPU has the kernels) also plays."""
    from performance_rnn.fast_step import int8_available

    ck = str(baby_checkpoint)
    for weights in ["float32", "bfloat16"] + (["int8"] if int8_available() else []):
        out = tmp_path / f"{weights}.mid"
        assert main(["generate", "--checkpoint", ck, "-o", str(out), "--seconds", "5", "--weights", weights]) == 0
        assert read_notes(out)
    with pytest.raises(SystemExit):
        main(["generate", "--checkpoint", ck, "-o", str(tmp_path / "x.mid"), "--weights", "int4"])
