"""The import direction: service -> performance_rnn, midi_io; performance_rnn -> midi_io.notes and midi_io.output
(the stdlib-only safe file writer) only."""

import subprocess
import sys
from pathlib import Path


def _modules_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_performance_rnn_imports_no_midi_or_web_library() -> None:
    mods = _modules_after("import performance_rnn.tasks.music.generate, performance_rnn.train, "
                          "performance_rnn.tasks.music.data")
    assert not mods & {"mido", "pretty_midi", "rtmidi", "fastapi", "service"}


def test_midi_io_never_imports_torch() -> None:
    mods = _modules_after("import midi_io, midi_io.files")
    assert "torch" not in mods and "performance_rnn" not in mods


def test_safe_output_helper_is_stdlib_only() -> None:
    mods = _modules_after("import midi_io.output")
    assert not mods & {"mido", "pretty_midi", "rtmidi", "numpy", "torch", "performance_rnn", "service"}


def test_the_testing_helpers_need_no_pytest() -> None:
    """bench/realtime.py imports them in a process without pytest; and ``testing`` is this repository's package,
    not an installed one of that name."""
    mods = _modules_after("import testing.jack, testing.midi, testing.audio_check")
    assert "pytest" not in mods and "_pytest" not in mods
    code = "import pathlib, testing; print(pathlib.Path(testing.__file__).resolve().parent.parent)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(Path(__file__).resolve().parents[1])
