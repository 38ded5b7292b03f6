"""Standard MIDI Files <-> notes, through pretty_midi. Times are seconds; the tempo map is resolved here."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pretty_midi

from midi_io.errors import MidiDecodeError
from midi_io.notes import Note

MAX_FILE_BYTES = 32 * 1024 * 1024  # larger inputs are refused rather than parsed
SUSTAIN_CC = 64
SUSTAIN_THRESHOLD = 64  # CC64 value >= 64 means pedal down (as note_seq)
_PARSE_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, AssertionError, ZeroDivisionError)


def read_notes(
    source: str | os.PathLike[str] | bytes, *, name: str | None = None, apply_sustain: bool = True
) -> list[Note]:
    """Read a type-0/1 Standard MIDI File into notes sorted by (start_s, pitch).

    ``source`` is a path or the file's bytes; ``name`` labels errors for bytes. Sustain pedal (CC64) lengthens
    notes when ``apply_sustain``. Raises MidiDecodeError naming the file and the reason.
    """
    data, label = _load_bytes(source, name)
    if len(data) > MAX_FILE_BYTES:
        raise MidiDecodeError(f"{label}: file is {len(data)} bytes, more than the {MAX_FILE_BYTES} allowed")
    if not data.startswith(b"MThd"):
        raise MidiDecodeError(f"{label}: not a Standard MIDI File (no 'MThd' header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns on odd but readable files
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except _PARSE_ERRORS as exc:
        raise MidiDecodeError(f"{label}: cannot parse MIDI: {str(exc) or type(exc).__name__}") from exc
    notes: list[Note] = []
    for inst in pm.instruments:
        raw = [(n.pitch, n.velocity, n.start, n.end) for n in inst.notes if n.end > n.start and n.velocity > 0]
        if apply_sustain and not inst.is_drum:
            pedal = [(cc.time, cc.value >= SUSTAIN_THRESHOLD) for cc in inst.control_changes if cc.number == SUSTAIN_CC]
            raw = apply_sustain_pedal(raw, pedal)
        for pitch, velocity, start, end in raw:
            if not (0 <= pitch <= 127 and start >= 0.0):
                continue
            notes.append(Note(pitch, min(127, max(1, velocity)), start, end, inst.program, inst.is_drum))
    notes.sort(key=lambda n: (n.start_s, n.pitch, n.end_s))
    return notes


def apply_sustain_pedal(
    notes: Sequence[tuple[int, int, float, float]], pedal: Sequence[tuple[float, bool]]
) -> list[tuple[int, int, float, float]]:
    """Lengthen (pitch, velocity, start_s, end_s) notes held by the sustain pedal, as note_seq does.

    A note released while the pedal is down sounds until the pedal lifts, or until the same pitch is struck
    again (then it ends at that onset). ``pedal`` is (time_s, is_down) in any order.
    """
    changes = sorted(pedal)
    if not changes:
        return list(notes)

    def pedal_up_after(t: float) -> float | None:
        """If the pedal is down at time t, the time it next lifts (inf if never); else None."""
        down = False
        for time_s, is_down in changes:
            if time_s > t:
                if down and not is_down:
                    return time_s
                if not down and is_down:
                    return None
            down = is_down
        return float("inf") if down else None

    out: list[list[float]] = []
    for pitch, velocity, start, end in notes:
        up = pedal_up_after(end)
        new_end = end if up is None else up
        out.append([pitch, velocity, start, new_end])
    # a re-struck pitch cuts the sustained earlier note; an unbounded note ends at the last onset/offset
    last_time = max([n[3] for n in out if n[3] != float("inf")] + [n[2] for n in out] + [0.0])
    by_pitch: dict[int, list[list[float]]] = {}
    for n in sorted(out, key=lambda n: n[2]):
        by_pitch.setdefault(int(n[0]), []).append(n)
    for same in by_pitch.values():
        for prev, nxt in zip(same, same[1:]):
            if prev[3] > nxt[2]:
                prev[3] = max(nxt[2], prev[2])
    result = []
    for pitch, velocity, start, end in out:
        if end == float("inf"):
            end = max(last_time, start)
        if end > start:
            result.append((int(pitch), int(velocity), start, end))
    return result


def notes_to_midi_bytes(notes: Sequence[Note], *, program: int = 0, tempo_bpm: float = 120.0,
                        end_s: float | None = None) -> bytes:
    """Write notes into one piano track of a Standard MIDI File (type 1, 480 ticks per beat).

    ``end_s`` makes the file last at least that long (a sustain-off CC at that time marks the end), so a
    performance that ends in silence keeps its length.
    """
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=tempo_bpm)
    inst = pretty_midi.Instrument(program=program, name="Performance RNN")
    for n in notes:
        inst.notes.append(pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start_s, end=n.end_s))
    if end_s is not None and end_s > 0:
        inst.control_changes.append(pretty_midi.ControlChange(SUSTAIN_CC, 0, end_s))
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def write_notes(notes: Sequence[Note], path: str | os.PathLike[str], *, program: int = 0,
                end_s: float | None = None) -> None:
    """Write notes to ``path`` atomically (a temp file renamed into place)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(notes_to_midi_bytes(notes, program=program, end_s=end_s))
    os.replace(tmp, target)


def _load_bytes(source: str | os.PathLike[str] | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        return bytes(source), name or "<bytes>"
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MidiDecodeError(f"{path}: file is {size} bytes, more than the {MAX_FILE_BYTES} allowed")
        return path.read_bytes(), name or str(path)
    except OSError as exc:
        raise MidiDecodeError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
