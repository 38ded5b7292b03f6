"""Magenta's optional multi-conditioning features, per event: [disable flag, density one-hot (8), pitch-class
histogram (12)] = 21 floats. Density counts note onsets in a forward 3 s window (notes/s) binned at the powers
of two 1..64; the histogram weights each pitch class by note duration inside a forward 5 s window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from performance_rnn.codecs.performance import Event, EventType, PerformanceCodecConfig

DENSITY_BIN_EDGES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # notes/s; bin 0 is < 1 n/s, bin 7 is >= 64 n/s
NUM_DENSITY_BINS = len(DENSITY_BIN_EDGES) + 1
CONTROL_DIM = 1 + NUM_DENSITY_BINS + 12


@dataclass(frozen=True)
class ControlConfig:
    density_window_s: float = 3.0
    histogram_window_s: float = 5.0
    histogram_prior: float = 0.01  # note_seq's prior_count, keeps the histogram defined in silence


def density_bin(notes_per_second: float) -> int:
    """notes/s -> bin 0..7 (power-of-two edges; only doublings move it, as in Magenta)."""
    return int(np.searchsorted(np.asarray(DENSITY_BIN_EDGES), notes_per_second, side="right"))


def control_vector(density: int | None, histogram: Sequence[float] | None) -> np.ndarray:
    """One control vector. ``None`` for both means conditioning disabled (flag set, the rest zero).

    A missing half is filled with Magenta's defaults (density 15 n/s -> bin 4, uniform histogram).
    """
    vec = np.zeros(CONTROL_DIM, dtype=np.float32)
    if density is None and histogram is None:
        vec[0] = 1.0
        return vec
    d = density_bin(15.0) if density is None else density
    if not 0 <= d < NUM_DENSITY_BINS:
        raise ValueError(f"density bin must be in range 0..{NUM_DENSITY_BINS - 1}, got {d}")
    vec[1 + d] = 1.0
    h = np.ones(12) if histogram is None else np.asarray(histogram, dtype=np.float64)
    if h.shape != (12,) or (h < 0).any() or h.sum() <= 0:
        raise ValueError("pitch-class histogram needs 12 non-negative weights with a positive sum")
    vec[1 + NUM_DENSITY_BINS :] = h / h.sum()
    return vec


def key_histogram(tonic: int, mode: str = "major") -> list[float]:
    """A pitch-class histogram favouring a scale: 'major', 'minor', or 'chromatic' (uniform)."""
    steps = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "chromatic": tuple(range(12))}
    if mode not in steps:
        raise ValueError(f"mode must be one of {sorted(steps)}, got {mode!r}")
    h = [0.0] * 12
    for s in steps[mode]:
        h[(tonic + s) % 12] = 1.0
    return h


def event_controls(
    events: Sequence[Event], codec: PerformanceCodecConfig, cfg: ControlConfig = ControlConfig()
) -> np.ndarray:
    """Controls (len(events), CONTROL_DIM) computed from the performance itself (training targets)."""
    sps = codec.steps_per_second
    times = np.zeros(len(events), dtype=np.float64)
    starts: list[float] = []
    spans: list[tuple[float, float, int]] = []
    open_at: dict[int, float] = {}
    t = 0.0
    for i, e in enumerate(events):
        times[i] = t
        if e.type == EventType.TIME_SHIFT:
            t += e.value / sps
        elif e.type == EventType.NOTE_ON:
            if e.value in open_at:
                spans.append((open_at[e.value], t, e.value % 12))
            open_at[e.value] = t
            starts.append(t)
        elif e.type == EventType.NOTE_OFF and e.value in open_at:
            spans.append((open_at.pop(e.value), t, e.value % 12))
    spans.extend((s, min(t, s + codec.max_note_duration_s), p % 12) for p, s in open_at.items())
    out = np.zeros((len(events), CONTROL_DIM), dtype=np.float32)
    if not len(events):
        return out
    onset = np.sort(np.asarray(starts))
    uniq, inverse = np.unique(times, return_inverse=True)
    # density: onsets in [t, t + window) per second
    counts = np.searchsorted(onset, uniq + cfg.density_window_s, side="left") - np.searchsorted(onset, uniq, "left")
    dens = np.searchsorted(np.asarray(DENSITY_BIN_EDGES), counts / cfg.density_window_s, side="right")
    # histogram: duration of each pitch class inside [t, t + window)
    hist = np.full((len(uniq), 12), cfg.histogram_prior)
    if spans:
        sp = np.asarray(spans)
        s0, s1, pc = sp[:, 0], sp[:, 1], sp[:, 2].astype(int)
        for lo in range(0, len(uniq), 256):  # chunks bound the (times x notes) matrix
            u = uniq[lo : lo + 256, None]
            overlap = np.clip(np.minimum(s1, u + cfg.histogram_window_s) - np.maximum(s0, u), 0.0, None)
            np.add.at(hist[lo : lo + 256].T, pc, overlap.T)
    hist /= hist.sum(axis=1, keepdims=True)
    out[np.arange(len(events)), 1 + dens[inverse]] = 1.0
    out[:, 1 + NUM_DENSITY_BINS :] = hist[inverse]
    return out
