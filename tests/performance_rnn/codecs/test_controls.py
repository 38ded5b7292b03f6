import numpy as np
import pytest

from midi_io.notes import Note
from performance_rnn.codecs.controls import (
    CONTROL_DIM,
    control_vector,
    density_bin,
    event_controls,
    key_histogram,
)
from performance_rnn.codecs.performance import PerformanceCodecConfig, notes_to_events

CFG = PerformanceCodecConfig()


@pytest.mark.parametrize(("nps", "bin_"), [(0.0, 0), (0.99, 0), (1.0, 1), (3.9, 2), (15.0, 4), (64.0, 7), (500, 7)])
def test_density_bins_are_powers_of_two(nps: float, bin_: int) -> None:
    assert density_bin(nps) == bin_


def test_disabled_vector_is_flag_only() -> None:
    v = control_vector(None, None)
    assert v.shape == (CONTROL_DIM,) and v[0] == 1 and v[1:].sum() == 0


def test_enabled_vector_has_one_hot_density_and_normalised_histogram() -> None:
    v = control_vector(3, key_histogram(0, "major"))
    assert v[0] == 0 and v[1 + 3] == 1 and v[1:9].sum() == 1
    assert v[9:].sum() == pytest.approx(1.0) and v[9 + 1] == 0  # C# is outside C major


def test_bad_controls_raise() -> None:
    with pytest.raises(ValueError, match="density"):
        control_vector(8, None)
    with pytest.raises(ValueError, match="histogram"):
        control_vector(None, [1.0] * 11)


def test_event_controls_measure_the_music_ahead() -> None:
    # 2 s of eight notes per second on C and E, then silence
    notes = [Note(60 if i % 2 else 64, 80, i / 8, i / 8 + 0.1) for i in range(16)]
    events = notes_to_events(notes, CFG)
    ctrl = event_controls(events, CFG)
    assert ctrl.shape == (len(events), CONTROL_DIM)
    first = ctrl[0]
    assert np.argmax(first[1:9]) == density_bin(16 / 3.0)  # 16 onsets in the forward 3 s window
    hist = first[9:]
    # C and E share the mass (up to 10 ms rounding)
    assert hist[0] == pytest.approx(hist[4], rel=0.05) and hist[0] > 0.45
    assert (ctrl[:, 0] == 0).all()


def test_density_window_edge_is_exact() -> None:
    """An onset exactly 3 s ahead is outside the [t, t + 3 s) window (float seconds once let it in)."""
    # 9 notes in the first 3 s (3 notes/s), then one exactly at 3.0 s: 9 / 3 = 3 n/s -> bin 2, not 10 / 3
    notes = [Note(60 + i, 80, i / 3, i / 3 + 0.1) for i in range(9)] + [Note(72, 80, 3.0, 3.1)]
    events = notes_to_events(notes, CFG)
    ctrl = event_controls(events, CFG)
    assert np.argmax(ctrl[0, 1:9]) == density_bin(9 / 3.0) == 2
    # and the case that drifted: 12 onsets at 0.25 s steps, the 13th exactly at 3.0 s -> 4 n/s (bin 3) at t=0
    notes = [Note(60, 80, i * 0.25, i * 0.25 + 0.1) for i in range(13)]
    ctrl = event_controls(notes_to_events(notes, CFG), CFG)
    assert np.argmax(ctrl[0, 1:9]) == density_bin(12 / 3.0) == 3
