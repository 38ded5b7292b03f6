"""Checks on synthesized audio for the audio tests: read it, its loudness, its note onsets, and how they line up
with the MIDI notes it was rendered from. numpy + soundfile (libsndfile), no audio-analysis library."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = {"wav": b"RIFF", "flac": b"fLaC", "ogg": b"OggS"}


def skip_reason() -> str | None:
    """Why the audio tests cannot run here (None when they can)."""
    from midi_io.audio import unavailable_reason

    if shutil.which("fluidsynth") is None:
        return "FluidSynth is not installed (apt-get install fluidsynth fluid-soundfont-gm; .ci/run does)"
    return unavailable_reason()


def read_audio(source: str | Path | bytes) -> tuple[np.ndarray, int, str]:
    """(mono float64 samples, sample rate, container) of a WAV/FLAC/Ogg file or its bytes."""
    import io

    import soundfile

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    x, sr = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return x.mean(axis=1), int(sr), soundfile.info(io.BytesIO(data)).format


def rms_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-20))


def audio_onsets(x: np.ndarray, sr: int, rise_db: float = 6.0, floor_db: float = 60.0,
                 gain_db: float = 1.0) -> np.ndarray:
    """Note onsets (s) of a piano recording from its energy envelope.

    The signal's first difference (a high-pass that brings out hammer attacks over held notes) gives a 1 ms
    energy envelope in dB, smoothed over 3 ms. An onset is a local peak of the rise over 5 ms that gains more
    than ``rise_db`` while within ``floor_db`` of the loudest frame, and after which the whole signal's energy
    over 30 ms is at least ``gain_db`` above the 30 ms before (a click in a decaying note is no onset); its time
    is where the envelope first climbed a third of that rise. Onsets closer than 25 ms merge (a rolled chord is
    one onset).
    """
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    w = int(0.03 * sr)

    def level(a: int, b: int) -> float:
        a, b = max(a, 0), min(b, len(x))
        return float(10 * np.log10((energy[b] - energy[a]) / max(b - a, 1) + 1e-20))

    hop = sr // 1000
    d = np.diff(x, prepend=0.0)
    frames = d[: len(d) // hop * hop].reshape(-1, hop)
    env = 10 * np.log10(np.convolve(np.mean(frames**2, axis=1), np.ones(3) / 3, mode="same") + 1e-14)
    rise = np.concatenate([np.zeros(5), env[5:] - env[:-5]])
    floor = env.max() - floor_db
    out: list[float] = []
    for i in range(1, len(env) - 1):
        if not (rise[i] > rise_db and env[i] > floor and rise[i] >= rise[i - 1] and rise[i] > rise[i + 1]):
            continue
        j, base = i, env[max(i - 5, 0)]
        while j > i - 5 and env[j - 1] > base + rise[i] / 3:
            j -= 1
        t = (j + 0.5) / 1000
        k = int(t * sr)
        if (not out or t - out[-1] >= 0.025) and level(k, k + w) - level(k - w, k) >= gain_db:
            out.append(t)
    return np.array(out)


@dataclass
class Alignment:
    detected: int  # onsets found in the audio
    within: float  # fraction of them within the tolerance of a MIDI note-on
    median_ms: float  # median |audio onset - nearest MIDI note-on|
    p90_ms: float
    signed_median_ms: float  # positive: the audio's onsets come after the notes'
    recall: float  # fraction of the note-ons (those 20 ms apart count once) with an onset within the tolerance


def align(audio_onsets_s: np.ndarray, note_onsets_s: Sequence[float], tolerance_s: float = 0.03) -> Alignment:
    """How the detected onsets line up with the MIDI note-ons (each detection against its nearest note)."""
    notes = np.sort(np.asarray(note_onsets_s, dtype=np.float64))
    signed = np.array([t - notes[np.argmin(np.abs(notes - t))] for t in audio_onsets_s])
    err = np.abs(signed)
    groups = [t for i, t in enumerate(notes) if i == 0 or t - notes[i - 1] > 0.02]
    found = np.asarray(audio_onsets_s, dtype=np.float64)
    recall = np.mean([found.size > 0 and np.min(np.abs(found - t)) <= tolerance_s for t in groups])
    return Alignment(len(signed), float(np.mean(err <= tolerance_s)), float(np.median(err) * 1e3),
                     float(np.percentile(err, 90) * 1e3), float(np.median(signed) * 1e3), float(recall))
