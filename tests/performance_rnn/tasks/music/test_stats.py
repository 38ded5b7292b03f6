"""Listening figures on hand-built clips with known answers."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from midi_io.notes import Note
from performance_rnn.tasks.music.stats import (
    chord_spread,
    chord_spread_ms,
    clip_stats,
    grid16_share,
    histogram_overlap,
    real_clips,
    summarize,
)


def run(onsets: list[float], length: float = 0.1, velocity: int = 64, pitch: int = 60) -> list[Note]:
    return [Note(pitch, velocity, t, t + length) for t in onsets]


def test_density_and_velocities() -> None:
    notes = [Note(60, 60, 0.0, 0.5), Note(62, 80, 1.0, 1.5), Note(64, 80, 2.0, 2.5), Note(65, 60, 3.0, 3.5)]
    s = clip_stats(notes, 2.0)
    assert s["notes_per_s"] == 2.0
    assert s["velocity_std"] == pytest.approx(10.0)
    assert s["distinct_velocities"] == 2.0


def test_polyphony_is_time_weighted_over_sounding_time() -> None:
    assert clip_stats([Note(60, 64, 0.0, 2.0), Note(64, 64, 1.0, 3.0)], 10.0)["polyphony"] == pytest.approx(4 / 3)
    # a silence between notes does not lower it; a note inside another counts only where both sound
    assert clip_stats([Note(60, 64, 0.0, 1.0), Note(64, 64, 5.0, 6.0)], 10.0)["polyphony"] == pytest.approx(1.0)
    nested = [Note(60, 64, 0.0, 4.0), Note(64, 64, 1.0, 2.0), Note(67, 64, 1.5, 2.5)]
    assert clip_stats(nested, 10.0)["polyphony"] == pytest.approx(6 / 4)
    assert clip_stats([], 10.0)["polyphony"] == 0.0


def test_grid16_share_quantized_run_is_one_and_jittered_is_lower() -> None:
    at_120 = [0.003 + k * 0.125 for k in range(120)]
    assert grid16_share(np.array(at_120)) == 1.0
    at_97 = [0.037 + k * 15 / 97 for k in range(100)]  # any integer tempo, any phase
    assert grid16_share(np.array(at_97)) == 1.0
    rng = random.Random(0)
    jittered = [t + rng.uniform(-0.04, 0.04) for t in at_120]
    assert grid16_share(np.array(jittered)) < 0.8
    one_off = at_120[:-1] + [at_120[-1] + 0.06]  # one of 120 onsets 60 ms off the grid
    assert grid16_share(np.array(one_off)) == pytest.approx(119 / 120)
    assert clip_stats(run(at_120), 16.0)["grid16_share"] == 1.0
    assert grid16_share(np.array([])) == 0.0


def test_grid16_share_is_fast_on_a_dense_clip() -> None:
    onsets = np.sort(np.random.default_rng(0).uniform(0, 30, 600))
    notes = run(onsets.tolist())
    best = min(_timed(lambda: clip_stats(notes, 30.0)) for _ in range(3))
    assert best < 0.5


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def test_chord_spread() -> None:
    spread = [1.0, 1.01, 1.02]  # a 3-note chord rolled 10 ms apart
    s = clip_stats(run(spread), 5.0)
    assert s["chord_spread"] == pytest.approx(2 / 3)
    assert s["chord_spread_ms"] == pytest.approx(10.0)
    together = clip_stats([Note(p, 64, 1.0, 2.0) for p in (60, 64, 67)], 5.0)  # a block chord: not spread
    assert together["chord_spread"] == 0.0
    assert math.isnan(together["chord_spread_ms"])
    assert chord_spread(np.array([0.0, 0.5, 1.0])) == 0.0
    # each onset is within 30 ms of the previous, but the third is 40 ms after the chord's first: a new chord
    assert chord_spread(np.array([0.0, 0.02, 0.04])) == pytest.approx(2 / 3)
    assert chord_spread_ms(np.array([0.0, 0.02, 0.04])) == pytest.approx(20.0)
    assert chord_spread_ms(np.array([0.0, 0.005, 0.02, 1.0, 1.01])) == pytest.approx(10.0)  # gaps 5, 15, 10


def test_ringing_to_guard() -> None:
    notes = [Note(60, 64, 0.0, 6.0), Note(62, 64, 0.0, 4.995), Note(64, 64, 0.0, 4.9)]
    assert clip_stats(notes, 10.0)["ringing_to_guard"] == 2.0
    assert clip_stats(notes, 10.0, guard_s=7.0)["ringing_to_guard"] == 0.0


def test_pitch_class_hist_is_duration_weighted() -> None:
    hist = clip_stats([Note(60, 64, 0.0, 1.0), Note(79, 64, 0.0, 3.0)], 5.0)["pitch_class_hist"]
    assert len(hist) == 12
    assert hist[0] == pytest.approx(0.25) and hist[7] == pytest.approx(0.75) and sum(hist) == pytest.approx(1.0)


def test_histogram_overlap() -> None:
    a = [1.0] + [0.0] * 11
    b = [0.0, 1.0] + [0.0] * 10
    assert histogram_overlap(a, a) == 1.0
    assert histogram_overlap(a, b) == 0.0
    assert histogram_overlap([2.0, 2.0] + [0.0] * 10, a) == pytest.approx(0.5)  # normalized first
    with pytest.raises(ValueError, match="differ in shape"):
        histogram_overlap(a, [1.0])


def test_real_clips_cut_from_the_first_onset_and_drop_the_short_tail() -> None:
    notes = [Note(60, 64, 2.0, 3.0), Note(62, 64, 31.0, 33.0), Note(64, 64, 33.0, 40.0), Note(65, 64, 62.5, 66.0),
             Note(67, 64, 63.0, 63.5, program=5)]
    clips = real_clips(notes, 30.0)
    assert len(clips) == 2  # 2..32, 32..62; 62..66 is shorter than 30 s
    assert clips[0] == [Note(60, 64, 0.0, 1.0), Note(62, 64, 29.0, 30.0)]  # the end clipped to the clip's
    assert clips[1] == [Note(64, 64, 1.0, 8.0)]
    assert real_clips([], 30.0) == []
    assert real_clips([Note(60, 64, 0.0, 10.0)], 30.0) == []


def test_summarize_medians_and_mean_histogram() -> None:
    a = clip_stats(run([0.0, 1.0]), 2.0)
    b = clip_stats(run([0.0, 0.01, 1.0, 2.0], pitch=62), 2.0)
    c = clip_stats(run([0.0, 1.0, 2.0, 3.0, 3.5, 3.9]), 2.0)
    s = summarize([a, b, c])
    assert s["notes_per_s"] == 2.0  # median of 1, 2, 3
    assert s["chord_spread_ms"] == pytest.approx(10.0)  # NaN of a and c ignored
    assert s["pitch_class_hist"][0] == pytest.approx(2 / 3) and s["pitch_class_hist"][2] == pytest.approx(1 / 3)
    assert summarize([]) == {}
