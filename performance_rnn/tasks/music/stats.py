"""Figures a listener hears, per clip of music: density, polyphony, dynamics, grid-lock, chord spread, stuck
notes and pitch classes, so generated clips can be set beside real ones (``perfrnn eval --generated``).

Pure numpy on ``Note`` lists: every figure is computed from one clip whose notes have sustain applied and
times in seconds from the clip start. Definitions are stated exactly in ``clip_stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from midi_io.notes import Note

GRID_BPM = np.arange(60, 181)  # tempos tried by grid16_share, 1 bpm apart
GRID_PHASE_STEP_S = 0.010  # phases tried, 10 ms apart
GRID_TOLERANCE_S = 0.015  # an onset within 15 ms of a grid line is "on the grid"
CHORD_WINDOW_S = 0.030  # onsets within 30 ms belong to one (hand-played) chord
_ONSET_CHUNK = 2048  # onsets scored per block by grid16_share (bounds memory on long inputs)

SCALAR_KEYS = ("notes_per_s", "polyphony", "velocity_std", "distinct_velocities", "grid16_share", "chord_spread",
               "chord_spread_ms", "ringing_to_guard")


def clip_stats(notes: Sequence[Note], seconds: float, *, guard_s: float = 5.0) -> dict[str, Any]:
    """Figures of one clip of ``seconds`` (notes with sustain applied, times in s from the clip start).

    - ``notes_per_s``: number of onsets (notes) / ``seconds``.
    - ``polyphony``: time-weighted mean number of sounding notes over the time where at least one sounds,
      i.e. (sum of note durations) / (length of the union of the notes' [start, end) intervals); intervals
      are clipped to [0, seconds]. 0 when nothing sounds.
    - ``velocity_std``: population standard deviation (ddof 0) of the notes' velocities; 0 without notes.
    - ``distinct_velocities``: number of distinct velocity values.
    - ``grid16_share``: see ``grid16_share``; 0 without notes.
    - ``chord_spread``: see ``chord_spread``; 0 without notes.
    - ``chord_spread_ms``: see ``chord_spread_ms``; NaN when no chord has two onsets at different times.
    - ``ringing_to_guard``: number of notes with duration >= ``guard_s`` - 0.01 s (held until the decoder's
      duration guard released them).
    - ``pitch_class_hist``: 12 floats, each pitch class's share of the summed note durations (sums to 1;
      by note counts when every note has zero length; all 0 without notes).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    onsets = np.sort(np.array([n.start_s for n in notes], dtype=np.float64))
    velocities = np.array([n.velocity for n in notes], dtype=np.float64)
    return {
        "notes_per_s": len(notes) / seconds,
        "polyphony": polyphony(notes, seconds),
        "velocity_std": float(velocities.std()) if len(velocities) else 0.0,
        "distinct_velocities": float(len(np.unique(velocities))),
        "grid16_share": grid16_share(onsets),
        "chord_spread": chord_spread(onsets),
        "chord_spread_ms": chord_spread_ms(onsets),
        "ringing_to_guard": float(sum(n.end_s - n.start_s >= guard_s - 0.01 for n in notes)),
        "pitch_class_hist": pitch_class_hist(notes).tolist(),
    }


def polyphony(notes: Sequence[Note], seconds: float) -> float:
    """(sum of note durations) / (length of the union of the notes' intervals), both clipped to [0, seconds]:
    the mean number of sounding notes over the time where at least one note sounds. 0 when nothing sounds."""
    if not notes:
        return 0.0
    starts = np.clip(np.array([n.start_s for n in notes], dtype=np.float64), 0.0, seconds)
    ends = np.clip(np.array([n.end_s for n in notes], dtype=np.float64), 0.0, seconds)
    total = float((ends - starts).sum())
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)  # the furthest end among notes started so far
    covered_before = np.concatenate([[starts[0]], reach[:-1]])
    union = float(np.clip(ends - np.maximum(starts, covered_before), 0.0, None).sum())
    return total / union if union > 0 else 0.0


def grid16_share(onsets: np.ndarray) -> float:
    """The share of onsets on the best-fitting 16th-note grid.

    Grids: every tempo of 60..180 bpm in 1 bpm steps (16th period 15/bpm s) and every phase 0, 10, 20 ms, ...
    below the period. An onset is on a grid when its distance to the nearest grid line is <= 15 ms. The figure
    is the largest on-grid share over all grids; quantized score-like output scores ~1, human playing lower.
    Chance level is not 0: the tolerance band covers 30 ms of each 83..250 ms period, and the maximum over
    grids lifts it further, so compare against real clips, not against 0. 0 without onsets.
    """
    t = np.asarray(onsets, dtype=np.float64)
    if len(t) == 0:
        return 0.0
    periods = 15.0 / GRID_BPM
    phase_counts = np.ceil(periods / GRID_PHASE_STEP_S - 1e-9).astype(int)
    period = np.repeat(periods, phase_counts)  # (G,) one row per (tempo, phase)
    phase = (np.arange(len(period)) - np.repeat(np.cumsum(phase_counts) - phase_counts, phase_counts))
    phase = phase * GRID_PHASE_STEP_S
    hits = np.zeros(len(period), dtype=np.int64)
    for lo in range(0, len(t), _ONSET_CHUNK):
        d = np.mod(t[None, lo : lo + _ONSET_CHUNK] - phase[:, None], period[:, None])
        hits += (np.minimum(d, period[:, None] - d) <= GRID_TOLERANCE_S + 1e-9).sum(axis=1)
    return float(hits.max() / len(t))


def chord_spread(onsets: np.ndarray) -> float:
    """The share of onsets that come after the previous onset by more than 0 and at most 30 ms (in time
    order), over all onsets: notes of a chord spread by the hand, as pianists play them; simultaneous onsets
    (a block chord) do not count. Compare clips at one time resolution (``perfrnn eval`` puts real clips
    through the 10 ms codec first). 0 without onsets."""
    t = np.sort(np.asarray(onsets, dtype=np.float64))
    if len(t) == 0:
        return 0.0
    gaps = np.diff(t)
    return float(((gaps > 1e-9) & (gaps <= CHORD_WINDOW_S + 1e-9)).sum() / len(t))


def chord_spread_ms(onsets: np.ndarray) -> float:
    """The median gap in ms between consecutive onsets of one chord, counting gaps > 0 only.

    Chords: in time order, an onset more than 30 ms after the current chord's first onset begins a new chord;
    the others join it. NaN when no chord has two onsets at different times.
    """
    t = np.sort(np.asarray(onsets, dtype=np.float64))
    gaps = []
    first = t[0] if len(t) else 0.0
    for prev, cur in pairwise(t):
        if cur - first > CHORD_WINDOW_S + 1e-9:
            first = cur
        elif cur > prev:
            gaps.append(cur - prev)
    return float(np.median(gaps) * 1000.0) if gaps else float("nan")


def pitch_class_hist(notes: Sequence[Note]) -> np.ndarray:
    """(12,) pitch-class shares of the summed note durations (by counts when all durations are 0)."""
    hist = np.zeros(12, dtype=np.float64)
    if not notes:
        return hist
    pcs = np.array([n.pitch % 12 for n in notes])
    weights = np.array([n.end_s - n.start_s for n in notes], dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(notes))
    np.add.at(hist, pcs, weights)
    return hist / hist.sum()


def histogram_overlap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Sum of the elementwise minima of two histograms, each first normalized to sum 1 (1 = identical,
    0 = disjoint or either empty)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"histograms differ in shape: {x.shape} vs {y.shape}")
    if x.sum() <= 0 or y.sum() <= 0:
        return 0.0
    return float(np.minimum(x / x.sum(), y / y.sum()).sum())


def real_clips(notes: Sequence[Note], seconds: float = 30.0) -> list[list[Note]]:
    """Cut a performance into consecutive, non-overlapping clips of ``seconds``.

    Clips start at the first onset t0 (a leading silence is skipped): clip k covers [t0 + k*seconds,
    t0 + (k+1)*seconds) and holds the notes starting in it, times relative to its start and ends clipped
    to its end. The performance ends at its last note-off; a final clip shorter than ``seconds`` is dropped.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if not notes:
        return []
    t0 = min(n.start_s for n in notes)
    count = int((max(n.end_s for n in notes) - t0) // seconds)
    clips: list[list[Note]] = [[] for _ in range(count)]
    for n in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        k = int((n.start_s - t0) // seconds)
        if k < count:
            lo = t0 + k * seconds
            clips[k].append(Note(n.pitch, n.velocity, n.start_s - lo, min(n.end_s - lo, seconds), n.program,
                                 n.is_drum))
    return clips


def summarize(clips_stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over clips of each scalar figure (NaN values ignored; NaN when every clip's is NaN) and the mean
    of the clips' pitch-class histograms (renormalized; clips without notes left out). {} for no clips."""
    if not clips_stats:
        return {}
    out: dict[str, Any] = {}
    for key in SCALAR_KEYS:
        values = np.array([s[key] for s in clips_stats if key in s], dtype=np.float64)
        values = values[~np.isnan(values)]
        out[key] = float(np.median(values)) if len(values) else float("nan")
    hists = np.array([s["pitch_class_hist"] for s in clips_stats if sum(s.get("pitch_class_hist", [])) > 0])
    mean = hists.mean(axis=0) if len(hists) else np.zeros(12)
    out["pitch_class_hist"] = (mean / mean.sum() if mean.sum() > 0 else mean).tolist()
    return out
