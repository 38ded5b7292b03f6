"""Music generation on top of the one sampler: load the checkpoint, build primers and controls, stop after
N seconds of music, decode events to notes (the primer excluded unless asked)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch

from midi_io.notes import Note
from performance_rnn.checkpoint import build_model, load_raw
from performance_rnn.codecs.controls import (
    CONTROL_DIM,
    DENSITY_MAX_NPS,
    DENSITY_MIN_NPS,
    control_vector,
    density_bin,
    key_histogram,
)
from performance_rnn.codecs.performance import (
    Event,
    EventType,
    PerformanceCodecConfig,
    decode,
    encode,
    encode_event,
    events_to_notes,
    final_velocity,
    notes_to_events,
    token_layout,
    velocity_to_bin,
)
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import Engine, StreamSpec
from performance_rnn.errors import CheckpointError
from performance_rnn.fast_step import WEIGHTS, FastStep, Weights, choose_weights
from performance_rnn.heads import CategoricalHead
from performance_rnn.keyboard import KeyboardMask
from performance_rnn.model import RecurrentModel
from performance_rnn.sampling import beam_search, generate, generators_from_seeds

DEFAULT_VELOCITY = 80  # the unprimed seed's dynamics (mezzo-forte)
# The model is primed with a primer's last PRIME_WINDOW events (the keyboard mask and the dynamics still follow
# the whole primer). Its predictions depend on its recent past only: on held-out performances, the next 64 events'
# NLL given the last 64, 128, 256 or 512 events differs from that given everything before (600+ events) by at most
# 0.0012 nats/event (bench/context.py). Priming a 10 s primer (~430 events) this way takes half the time.
PRIME_WINDOW = 256
PROBE_SEEDS, PROBE_SECONDS = (0, 1, 2, 3), 8.0  # how a model's own pace is measured (once per loaded model)
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#"}


@dataclass
class MusicModel:
    model: RecurrentModel
    head: CategoricalHead
    codec: PerformanceCodecConfig
    meta: dict = field(default_factory=dict)
    weights: Weights = "float32"  # how the inference step stores its weights (see performance_rnn.fast_step)

    @cached_property
    def fast(self) -> FastStep:
        """The inference step (priming and sampling) every generation path uses, built once."""
        return FastStep(self.model, weights=self.weights)
    _own_density: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def own_density(self) -> float:
        """Notes per second this model plays with conditioning off (the median of a few seeded runs), measured
        once: what a key given without a density keeps, rather than Magenta's fixed 15 n/s."""
        with self._lock:
            if self._own_density is None:
                runs = generate_performances(self, seconds=PROBE_SECONDS, seeds=PROBE_SEEDS)
                rates = sorted(len(notes) / PROBE_SECONDS for notes in runs)
                self._own_density = max(DENSITY_MIN_NPS, rates[len(rates) // 2])
            return self._own_density

    @property
    def conditioned(self) -> bool:
        return self.model.config.control_size == CONTROL_DIM

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_music(path: str | os.PathLike[str], device: str = "cpu", weights: str = "auto") -> MusicModel:
    """Load a music checkpoint. ``weights``: "auto" (int8 on a CPU where it keeps the model within tolerance,
    see ``fast_step.choose_weights``; else float32), or one of float32, bfloat16, int8.
    Raises CheckpointError, or ValueError for an unknown or unavailable ``weights``."""
    if weights != "auto" and weights not in WEIGHTS:
        raise ValueError(f"weights must be auto or one of {', '.join(WEIGHTS)}, got {weights!r}")
    ckpt = load_raw(path)
    if ckpt["kind"] != "music":
        raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, not a music one")
    codec_dict = {k: v for k, v in ckpt["codec"].items() if k != "name"}
    codec = PerformanceCodecConfig(**codec_dict)
    model = build_model(ckpt, device)
    if weights == "auto":
        default = torch.from_numpy(control_vector(None, None)) if model.config.control_size == CONTROL_DIM else None
        start = encode_event(Event(EventType.VELOCITY, velocity_to_bin(DEFAULT_VELOCITY, codec)), codec)
        weights = choose_weights(model, start, default)
    mm = MusicModel(model, CategoricalHead(model.config.output_size), codec, dict(ckpt.get("meta", {})),
                    weights)  # type: ignore[arg-type]
    mm.fast  # noqa: B018 - build the step now: int8 weights pack at load, not in the first request
    return mm


def parse_key(key: str) -> list[float]:
    """'C', 'F#', 'Bb minor', 'Am' -> a pitch-class histogram favouring that scale."""
    text = key.strip()
    mode = "major"
    low = text.lower()
    for suffix, m in ((" minor", "minor"), (" major", "major"), ("min", "minor"), ("maj", "major"), ("m", "minor")):
        if low.endswith(suffix) and len(text) > len(suffix):
            text, mode = text[: -len(suffix)].strip(), m
            break
    name = text.upper()
    name = _FLATS.get(name, name)
    if name not in PITCH_CLASSES:
        raise ValueError(f"unknown key {key!r}: use e.g. C, F#, Bb, 'A minor', Am")
    return key_histogram(PITCH_CLASSES.index(name), mode)


def check_density(density_nps: float | None) -> None:
    """ValueError unless ``density_nps`` is None or in the control's range."""
    if density_nps is not None and not DENSITY_MIN_NPS <= density_nps <= DENSITY_MAX_NPS:
        raise ValueError(f"density must be {DENSITY_MIN_NPS:g}..{DENSITY_MAX_NPS:g} notes per second, got "
                         f"{density_nps:g} (leave it unset for the model's own pace; below 1 the model falls silent)")


def controls_for(mm: MusicModel, density_nps: float | None, key: str | None) -> torch.Tensor | None:
    """The control vector (C,) for a stream: None for an unconditioned model; the disable flag when neither
    density (notes per second) nor key is given; a key alone keeps the model's own pace (``own_density``).
    Raises ValueError for a density out of range, an unknown key, or controls on an unconditioned model."""
    check_density(density_nps)
    if not mm.conditioned:
        if density_nps is not None or key is not None:
            raise ValueError("this checkpoint was trained without controls: density and key are unavailable")
        return None
    if key is not None and density_nps is None:
        density_nps = mm.own_density()
    d = None if density_nps is None else density_bin(density_nps)
    h = None if key is None else parse_key(key)
    return torch.from_numpy(control_vector(d, h))


def primer_tokens(mm: MusicModel, notes: Sequence[Note] | None) -> tuple[list[int], float]:
    """Primer notes -> (tokens, primer length in s). Without notes, one VELOCITY event (mezzo-forte): every
    training window starts with one, so the model begins in familiar territory and sets its dynamics (a
    TIME_SHIFT seed, as in Magenta's browser demo, left this model never emitting a velocity). With notes,
    the primer ends at its last note-off."""
    seed = [encode_event(Event(EventType.VELOCITY, velocity_to_bin(DEFAULT_VELOCITY, mm.codec)), mm.codec)]
    if not notes:
        return seed, 0.0
    t0 = min(n.start_s for n in notes)
    shifted = [Note(n.pitch, n.velocity, n.start_s - t0, n.end_s - t0) for n in notes]
    tokens = encode(notes_to_events(shifted, mm.codec), mm.codec)
    return tokens, max(n.end_s for n in shifted)


def chord_primer(pitches: Sequence[int], velocity: int = 100, seconds: float = 0.5) -> list[Note]:
    """Magenta's --primer_pitches: one chord held for 0.5 s at velocity 100."""
    return [Note(int(p), velocity, 0.0, seconds) for p in pitches]


def shift_seconds(tokens: torch.Tensor, codec: PerformanceCodecConfig) -> torch.Tensor:
    """(B,) tokens -> seconds each advances the clock (0 for non-TIME_SHIFT tokens)."""
    ids = token_layout(codec).time_shift
    lo = ids.start
    is_shift = (tokens >= lo) & (tokens < ids.stop)
    return torch.where(is_shift, (tokens - lo + 1).float() / codec.steps_per_second, torch.zeros_like(tokens).float())


def generate_performances(
    mm: MusicModel,
    *,
    seconds: float,
    seeds: Sequence[int],
    sampling: SamplingConfig = SamplingConfig(),
    primer: Sequence[Note] | None = None,
    density_nps: float | None = None,
    key: str | None = None,
    include_primer: bool = False,
    max_events_per_second: float = 200.0,
    keyboard_mask: bool = True,
) -> list[list[Note]]:
    """One performance of ``seconds`` per seed, batched; primer excluded unless ``include_primer``.
    ``keyboard_mask`` rules out impossible events (see ``performance_rnn.keyboard``); off is for research."""
    if not 0 < seconds <= 3600:
        raise ValueError(f"seconds must be in range (0, 3600], got {seconds}")
    tokens, _ = primer_tokens(mm, primer)
    ctrl = controls_for(mm, density_nps, key)
    dev = mm.device
    prim = torch.tensor(tokens, dtype=torch.long, device=dev)
    prim_ctrl = None if ctrl is None else ctrl.to(dev).expand(len(tokens), -1)
    n = len(seeds)
    clock = torch.zeros(n)
    out: list[list[int]] = [[] for _ in range(n)]

    def stop(step: int, outputs: torch.Tensor) -> torch.Tensor:
        nonlocal clock
        clock = clock + shift_seconds(outputs.cpu(), mm.codec)
        return clock >= seconds

    batch_ctrl = None if ctrl is None else ctrl.to(dev).expand(n, -1)
    for outputs, active in generate(
        mm.fast, mm.head, [prim] * n, [sampling] * n, generators_from_seeds(seeds),
        max_steps=int(seconds * max_events_per_second) + 16,
        primer_controls=None if prim_ctrl is None else [prim_ctrl] * n,
        controls=(lambda t, last: batch_ctrl) if batch_ctrl is not None else None,
        stop=stop,
        mask=KeyboardMask.of(mm.codec, [tokens] * n, dev) if keyboard_mask else None,
        prime_window=PRIME_WINDOW,
    ):
        for i in torch.nonzero(active).flatten().tolist():
            out[i].append(int(outputs[i]))
    return [performance_notes(mm, toks, seconds, primer=primer, include_primer=include_primer) for toks in out]


def beam_performance(mm: MusicModel, *, seconds: float, beam_size: int, seed: int = 0,
                     sampling: SamplingConfig = SamplingConfig(), branch_factor: int = 2,
                     steps_per_iteration: int = 1, primer: Sequence[Note] | None = None,
                     density_nps: float | None = None, key: str | None = None, include_primer: bool = False,
                     keyboard_mask: bool = True, max_events_per_second: float = 200.0) -> list[Note]:
    """The most likely of Magenta-style beam search's sampled continuations, cut to ``seconds``. Honours the
    seed, the sampling settings, the density and key controls and the keyboard mask as sampling does."""
    if not 0 < seconds <= 600:
        raise ValueError(f"beam search: seconds must be in range (0, 600], got {seconds}")
    if not 1 <= beam_size * branch_factor <= 256:
        raise ValueError(f"beam search: beam_size x branch_factor must be in range 1..256, got "
                         f"{beam_size} x {branch_factor}")
    tokens, _ = primer_tokens(mm, primer)
    ctrl = controls_for(mm, density_nps, key)
    dev = mm.device
    prim = torch.tensor(tokens, dtype=torch.long, device=dev)
    steps = int(seconds * max_events_per_second) + 16

    def finished(seqs: torch.Tensor) -> torch.Tensor:
        return shift_seconds(seqs.cpu(), mm.codec).sum(dim=1) >= seconds

    seq, _ = beam_search(mm.fast, mm.head, prim, beam_size=beam_size, max_steps=steps, sampling=sampling,
                         generator=generators_from_seeds([seed])[0], branch_factor=branch_factor,
                         steps_per_iteration=steps_per_iteration,
                         primer_controls=None if ctrl is None else ctrl.to(dev).expand(len(tokens), -1),
                         controls=None if ctrl is None else ctrl.to(dev).expand(steps, -1),
                         mask=KeyboardMask.of(mm.codec, [tokens], dev) if keyboard_mask else None, stop=finished,
                         prime_window=PRIME_WINDOW)
    return performance_notes(mm, seq, seconds, primer=primer, include_primer=include_primer)


def performance_notes(mm: MusicModel, tokens: Sequence[int], seconds: float, *,
                      primer: Sequence[Note] | None = None, include_primer: bool = False) -> list[Note]:
    """Generated tokens (after the primer) -> notes cut to ``seconds``; the dynamics continue from the
    primer's; the primer's notes are put first when ``include_primer``."""
    prim, primer_s = primer_tokens(mm, primer)
    velocity = final_velocity(prim, mm.codec)
    notes = [n for n in events_to_notes(decode(tokens, mm.codec), mm.codec, default_velocity=velocity)
             if n.start_s < seconds]
    notes = [Note(n.pitch, n.velocity, n.start_s, min(n.end_s, seconds)) for n in notes]
    if not include_primer or not primer:
        return notes
    t0 = min(n.start_s for n in primer)
    head = [Note(n.pitch, n.velocity, n.start_s - t0, n.end_s - t0) for n in primer]
    return head + [Note(n.pitch, n.velocity, n.start_s + primer_s, n.end_s + primer_s) for n in notes]


def music_engine(mm: MusicModel, *, fast: bool = True, max_streams: int = 64, keyboard_mask: bool = True,
                 **kw: object) -> Engine:
    """An engine for this music model: the fused step (``fast``), music-time pacing by TIME_SHIFT tokens,
    the disable-conditioning vector as the default control of a conditioned model, and the keyboard mask."""
    model = mm.fast if fast else mm.model
    default = torch.from_numpy(control_vector(None, None)) if mm.conditioned else None
    masks = (lambda primers: KeyboardMask.of(mm.codec, primers, mm.device)) if keyboard_mask else None
    return Engine(model, mm.head, seconds_of=lambda t: shift_seconds(t, mm.codec), default_controls=default,
                  max_streams=max_streams, device=mm.device, masks=masks, prime_window=PRIME_WINDOW,
                  **kw)  # type: ignore[arg-type]


def stream_spec(mm: MusicModel, *, seed: int, sampling: SamplingConfig = SamplingConfig(),
                primer: Sequence[Note] | None = None, density_nps: float | None = None, key: str | None = None,
                lookahead_s: float | None = 0.2, max_seconds: float | None = None) -> StreamSpec:
    tokens, _ = primer_tokens(mm, primer)
    return StreamSpec(torch.tensor(tokens, dtype=torch.long), sampling, seed, controls_for(mm, density_nps, key),
                      lookahead_s, max_seconds)
