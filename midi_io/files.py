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
from midi_io.output import write_bytes

MAX_FILE_BYTES = 32 * 1024 * 1024  # larger inputs are refused rather than parsed
SUSTAIN_CC = 64
SUSTAIN_THRESHOLD = 64  # CC64 value >= 64 means pedal down (as note_seq)
_SUSTAIN_ON, _SUSTAIN_OFF, _NOTE_ON, _NOTE_OFF = 0, 1, 2, 3  # note_seq's order of events at one time
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
    # note_seq's order: instruments in file order, each one's notes in file order (ties sort stably on it)
    raw = [(n.pitch, n.velocity, n.start, n.end, i) for i, inst in enumerate(pm.instruments) for n in inst.notes
           if not inst.is_drum or not apply_sustain]
    if apply_sustain:
        pedal = [(cc.time, cc.value, i) for i, inst in enumerate(pm.instruments) for cc in inst.control_changes
                 if cc.number == SUSTAIN_CC]
        raw = sustain_notes(raw, pedal)
        raw += [(n.pitch, n.velocity, n.start, n.end, i) for i, inst in enumerate(pm.instruments) if inst.is_drum
                for n in inst.notes]
    notes: list[Note] = []
    for pitch, velocity, start, end, i in raw:
        inst = pm.instruments[i]
        if not (0 <= pitch <= 127 and 0.0 <= start <= end) or velocity <= 0:
            continue
        notes.append(Note(pitch, min(127, velocity), start, end, inst.program, inst.is_drum))
    notes.sort(key=lambda n: (n.start_s, n.pitch))  # stable, as note_seq's Performance sorts
    return notes


def sustain_notes(
    notes: Sequence[tuple[int, int, float, float, int]], pedal: Sequence[tuple[float, int, int]]
) -> list[tuple[int, int, float, float, int]]:
    """Apply sustain pedal to (pitch, velocity, start_s, end_s, instrument) notes, with note_seq's rules
    (``apply_sustain_control_changes``), so that files encode exactly as Magenta encodes them.

    ``pedal`` is (time_s, CC64 value, instrument) in file order. Per instrument: a note released while the
    pedal is down sounds until the pedal lifts; a new onset of the same pitch while the pedal is down ends
    every sounding note of that pitch (one that would be left with no duration is dropped); notes still
    held by the pedal at the end run to the time of the last note or pedal event. Events at one time are
    taken in the order pedal down, pedal up, note-on, note-off. One sort, then one pass: linear in the
    number of events times the notes sounding at once.
    """
    starts = [n[2] for n in notes]
    ends = [n[3] for n in notes]
    removed: set[int] = set()
    events: list[tuple[float, int, int]] = [(n[2], _NOTE_ON, i) for i, n in enumerate(notes)]
    events += [(n[3], _NOTE_OFF, i) for i, n in enumerate(notes)]
    events += [(t, _SUSTAIN_ON if value >= SUSTAIN_THRESHOLD else _SUSTAIN_OFF, i) for i, (t, value, _) in
               enumerate(pedal)]
    events.sort(key=lambda e: (e[0], e[1]))  # stable: ties keep file order, as note_seq's list.sort
    active: dict[int, list[int]] = {}
    sustained: dict[int, bool] = {}
    time = 0.0
    for time, kind, i in events:
        if kind in (_SUSTAIN_ON, _SUSTAIN_OFF):
            inst = pedal[i][2]
            sustained[inst] = kind == _SUSTAIN_ON
            if kind == _SUSTAIN_OFF:
                keep = []
                for j in active.get(inst, []):
                    if ends[j] < time:  # held only by the pedal: it ends now
                        ends[j] = time
                    else:
                        keep.append(j)
                active[inst] = keep
            continue
        inst = notes[i][4]
        held = active.setdefault(inst, [])
        if kind == _NOTE_ON:
            if sustained.get(inst, False):
                keep = []
                for j in held:
                    if notes[j][0] == notes[i][0]:
                        ends[j] = time
                        if starts[j] == ends[j]:
                            removed.add(j)
                    else:
                        keep.append(j)
                held[:] = keep
            held.append(i)
        elif not sustained.get(inst, False) and i in held:
            held.remove(i)
    for held in active.values():
        for j in held:
            ends[j] = time
    return [(p, v, starts[i], ends[i], inst) for i, (p, v, _, _, inst) in enumerate(notes) if i not in removed]


def apply_sustain_pedal(
    notes: Sequence[tuple[int, int, float, float]], pedal: Sequence[tuple[float, bool]]
) -> list[tuple[int, int, float, float]]:
    """Sustain for one instrument: (pitch, velocity, start_s, end_s) notes, pedal as (time_s, is_down) in
    time order. The rules of ``sustain_notes``."""
    out = sustain_notes([(p, v, s, e, 0) for p, v, s, e in notes],
                        [(t, 127 if down else 0, 0) for t, down in pedal])
    return [(p, v, s, e) for p, v, s, e, _ in out]


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
                end_s: float | None = None, force: bool = False) -> None:
    """Write notes to ``path`` safely (``midi_io.output``: a temp file beside it renamed into place, removed on
    any error; a device, FIFO or symlink target refused unless ``force``)."""
    write_bytes(path, notes_to_midi_bytes(notes, program=program, end_s=end_s), force=force)


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
