"""``perfrnn events``: a file's events as the model sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midi_io.files import write_notes
from midi_io.notes import Note
from service.cli import main


def test_events_prints_the_tokens_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.mid"
    write_notes([Note(60, 80, 0.5, 1.0), Note(64, 100, 0.5, 0.75)], path)
    assert main(["events", str(path)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[:6] == ["TIME_SHIFT 50", "VELOCITY 20", "NOTE_ON 60", "VELOCITY 25", "NOTE_ON 64", "TIME_SHIFT 25"]
    assert main(["events", "--ids", str(path)]) == 0
    ids = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ids[:5] == [256 + 49, 356 + 19, 60, 356 + 24, 64]


def test_events_of_an_unreadable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    assert main(["events", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.mid" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
