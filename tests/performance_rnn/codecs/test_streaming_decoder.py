"""The streaming decoder (live playback's, token by token) against the file decoder (``events_to_notes``, whose
parity with note_seq is tested in test_note_seq_parity.py): the same notes from any token stream."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from midi_io.notes import Note
from performance_rnn.codecs.performance import (
    PerformanceCodecConfig,
    PerformanceDecoder,
    TimedNote,
    decode,
    events_to_notes,
    token_layout,
)

CFG = PerformanceCodecConfig()
LAYOUT = token_layout(CFG)
PITCHES = (60, 61, 62)  # few pitches: re-strikes, note-offs of silent keys, notes held past the 5 s guard


def _token() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([LAYOUT.note_on.start + p for p in PITCHES]),
        st.sampled_from([LAYOUT.note_off.start + p for p in PITCHES]),
        st.sampled_from([LAYOUT.time_shift.start + s - 1 for s in (1, 5, 50, 100)]),
        st.integers(LAYOUT.velocity.start, LAYOUT.velocity.stop - 1),
    )


def paired(events: list[TimedNote]) -> list[Note]:
    """Timed events -> notes as a listener hears them: each note-off ends the oldest sounding note-on of its
    pitch; a note that lasts no time is not heard."""
    open_: dict[int, list[TimedNote]] = {}
    notes = []
    for ev in events:
        if ev.on:
            open_.setdefault(ev.pitch, []).append(ev)
        else:
            assert open_.get(ev.pitch), f"a note-off of {ev.pitch} with no note-on before it"
            on = open_[ev.pitch].pop(0)
            if ev.time_s > on.time_s:
                notes.append(Note(ev.pitch, on.velocity, on.time_s, ev.time_s))
    assert not any(open_.values()), "a note-on never got its note-off"
    return sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s))


def streamed(tokens: list[int], velocity: int = 64) -> list[TimedNote]:
    dec = PerformanceDecoder(CFG, velocity=velocity)
    out = [ev for t in tokens for ev in dec.feed(t)]
    return out + dec.release_all()


@settings(max_examples=int(os.environ.get("PERFRNN_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(st.lists(_token(), max_size=300), st.integers(1, 127))
def test_the_streaming_decoder_gives_the_file_decoders_notes(tokens: list[int], velocity: int) -> None:
    want = events_to_notes(decode(tokens, CFG), CFG, default_velocity=velocity)
    assert paired(streamed(tokens, velocity)) == sorted(want, key=lambda n: (n.start_s, n.pitch, n.end_s))


@given(st.lists(_token(), max_size=200))
def test_streamed_events_are_in_time_order(tokens: list[int]) -> None:
    times = [ev.time_s for ev in streamed(tokens)]
    assert times == sorted(times)


def test_a_note_off_after_the_duration_guard_does_not_end_a_newer_note() -> None:
    on, off, shift = LAYOUT.note_on.start + 60, LAYOUT.note_off.start + 60, LAYOUT.time_shift.stop - 1  # 1 s
    # struck, held 6 s (the guard ends it at 5 s), struck again, then the model's NOTE_OFF of the first note
    tokens = [on, *[shift] * 6, on, off, shift, off]
    assert paired(streamed(tokens)) == [Note(60, 64, 0.0, 5.0), Note(60, 64, 6.0, 7.0)]


def test_a_re_struck_pitch_keeps_both_notes() -> None:
    on, off, shift = LAYOUT.note_on.start + 60, LAYOUT.note_off.start + 60, LAYOUT.time_shift.start  # 10 ms
    tokens = [on, shift, on, shift, off, shift, off]
    assert paired(streamed(tokens)) == [Note(60, 64, 0.0, 0.02), Note(60, 64, 0.01, 0.03)]


def test_the_layout_is_the_tables() -> None:
    assert (LAYOUT.note_on, LAYOUT.note_off, LAYOUT.time_shift, LAYOUT.velocity) == (
        range(128), range(128, 256), range(256, 356), range(356, 388))
    small = token_layout(PerformanceCodecConfig(max_shift_steps=50, num_velocity_bins=16))
    assert (small.time_shift, small.velocity, small.size) == (range(256, 306), range(306, 322), 322)
