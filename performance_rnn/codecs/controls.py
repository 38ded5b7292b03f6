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
# what users are told (CLI --help, the API schema): the density and key controls' meaning and real range
DENSITY_MIN_NPS, DENSITY_MAX_NPS = 1.0, 64.0  # the density control's range, notes per second
DENSITY_HELP = ("target notes per second, 1..64, heard through Magenta's power-of-two bins (1-2, 2-4, 4-8, 8-16, "
                "16-32, 32-64, 64+: values inside one bin play alike). A model follows it only as high as its training "
                "music went: music.pt up to about 32, music-scores.pt up to about 8-16; above that it plays fewer "
                "notes. Unset: the model's own pace")
KEY_HELP = ("favour a key: C, F#, Bb, 'A minor', Am, 'D major'. Its scale tones are favoured and its tonic triad most "
            "(so D minor and F major differ); with no density given, the model keeps its own pace")

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

    A missing half is filled with Magenta's defaults (density 15 n/s -> bin 4, uniform histogram); callers that
    know the model's own density pass it instead (``performance_rnn.tasks.music.generate.controls_for``).
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


TRIAD_WEIGHT = 2.0  # the tonic triad's pitch classes sound longer than the other scale tones, as in real music


def key_histogram(tonic: int, mode: str = "major") -> list[float]:
    """A pitch-class histogram favouring a key: its scale's tones, the tonic triad (1st, 3rd, 5th) weighted
    ``TRIAD_WEIGHT``, so that a minor key differs from its relative major (D minor and F major share every
    scale tone, not their triads). 'chromatic' is uniform."""
    steps = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "chromatic": tuple(range(12))}
    if mode not in steps:
        raise ValueError(f"mode must be one of {sorted(steps)}, got {mode!r}")
    h = [0.0] * 12
    for s in steps[mode]:
        h[(tonic + s) % 12] = 1.0
    if mode != "chromatic":
        scale = steps[mode]
        for degree in (0, 2, 4):
            h[(tonic + scale[degree]) % 12] = TRIAD_WEIGHT
    return h


def event_controls(
    events: Sequence[Event], codec: PerformanceCodecConfig, cfg: ControlConfig = ControlConfig()
) -> np.ndarray:
    """Controls (len(events), CONTROL_DIM) computed from the performance itself (training targets)."""
    dens, hist = event_control_parts(events, codec, cfg)
    out = np.zeros((len(events), CONTROL_DIM), dtype=np.float32)
    out[np.arange(len(events)), 1 + dens] = 1.0
    out[:, 1 + NUM_DENSITY_BINS :] = hist
    return out


def assemble_controls(dens: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Compact parts (T,) density bins + (T, 12) histograms -> (T, CONTROL_DIM) control vectors."""
    out = np.zeros((len(dens), CONTROL_DIM), dtype=np.float32)
    out[np.arange(len(dens)), 1 + dens.astype(np.int64)] = 1.0
    out[:, 1 + NUM_DENSITY_BINS :] = hist
    return out


def event_control_parts(
    events: Sequence[Event], codec: PerformanceCodecConfig, cfg: ControlConfig = ControlConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """The controls of each event in compact form: density bin (T,) int8 and pitch-class histogram (T, 12).

    Time is counted in whole steps, so the windows' edges are exact: an onset exactly ``density_window_s``
    ahead is outside the window (float seconds let it drift in)."""
    sps = codec.steps_per_second
    limit = round(codec.max_note_duration_s * sps)
    steps = np.zeros(len(events), dtype=np.int64)
    starts: list[int] = []
    spans: list[tuple[int, int, int]] = []
    open_at: dict[int, list[int]] = {}
    t = 0
    for i, e in enumerate(events):
        steps[i] = t
        if e.type == EventType.TIME_SHIFT:
            t += e.value
        elif e.type == EventType.NOTE_ON:
            open_at.setdefault(e.value, []).append(t)
            starts.append(t)
        elif e.type == EventType.NOTE_OFF and open_at.get(e.value):
            s = open_at[e.value].pop(0)  # the oldest open note of the pitch, as the decoder
            spans.append((s, min(t, s + limit), e.value % 12))
    spans.extend((s, min(t, s + limit), p % 12) for p, q in open_at.items() for s in q)
    dens = np.zeros(len(events), dtype=np.int8)
    hist_out = np.zeros((len(events), 12), dtype=np.float32)
    if not len(events):
        return dens, hist_out
    onset = np.sort(np.asarray(starts, dtype=np.int64))
    uniq, inverse = np.unique(steps, return_inverse=True)
    window = round(cfg.density_window_s * sps)
    # density: onsets in [t, t + window) per second
    counts = np.searchsorted(onset, uniq + window, side="left") - np.searchsorted(onset, uniq, "left")
    d = np.searchsorted(np.asarray(DENSITY_BIN_EDGES), counts / cfg.density_window_s, side="right")
    # histogram: duration of each pitch class inside [t, t + window)
    hwin = round(cfg.histogram_window_s * sps)
    hist = np.full((len(uniq), 12), cfg.histogram_prior * sps)
    if spans:
        sp = np.asarray(spans, dtype=np.int64)
        s0, s1, pc = sp[:, 0], sp[:, 1], sp[:, 2]
        order = np.argsort(s0)
        s0, s1, pc = s0[order], s1[order], pc[order]
        reach = np.maximum.accumulate(s1 - s0)  # longest span so far: bounds which spans can overlap a window
        for lo in range(0, len(uniq), 256):  # chunks bound the (times x notes) matrix
            u = uniq[lo : lo + 256]
            a = np.searchsorted(s0, u[0] - int(reach[-1]), "left")
            b = np.searchsorted(s0, u[-1] + hwin, "left")
            uu = u[:, None]
            overlap = np.clip(np.minimum(s1[a:b], uu + hwin) - np.maximum(s0[a:b], uu), 0, None)
            np.add.at(hist[lo : lo + 256].T, pc[a:b], overlap.T)
    hist /= hist.sum(axis=1, keepdims=True)
    dens[:] = d[inverse]
    hist_out[:] = hist[inverse]
    return dens, hist_out
