"""Real-time benchmark: step latency, throughput, sampling, concurrent live streams, MIDI timing through JACK,
time to first note. Prints a table and writes JSON with the machine it ran on.

    python -m bench.realtime [--quick] [--checkpoint PATH] [--out bench/results/realtime.json] [--threads N]
                             [--player-threads] [--no-settle]

Every figure is measured in this run, the naive ``nn.LSTM`` per-step loop (``RecurrentModel.step``) included.
Batch-1 latency and the sampling section run with ``torch.set_num_threads(1)``; the other sections with ``--threads``
(default 1).
Sections 3 and 4 play every stream's player on one shared ``PlayerHub`` thread, as a server does;
``--player-threads`` gives each player its own thread instead (for comparison). Section 4 plays through the
frame-accurate JACK output (the default on JACK) and, as the baseline in the same run, python-rtmidi's, each
recorded by a frame-accurate JACK client (``JACK_MEASURE``); the JACK server is started with real-time priority
where the machine allows it (``testing.jack.start_jack``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido
import numpy as np
import torch

from bench.common import ROOT, machine_info, shown
from midi_io.notes import Note
from midi_io.player import Player, PlayerHub
from performance_rnn.codecs.controls import control_vector
from performance_rnn.codecs.performance import Event, EventType, PerformanceCodecConfig, encode_event
from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.errors import CheckpointError
from performance_rnn.fast_step import FastStep, Weights, choose_weights
from performance_rnn.heads import BatchSampling, CategoricalHead, fast_sample
from performance_rnn.keyboard import KeyboardMask
from performance_rnn.model import RecurrentModel
from performance_rnn.sampling import StepModel, advance, generators_from_seeds, prime
from performance_rnn.tasks.music.generate import (
    PRIME_WINDOW,
    MusicModel,
    generate_performances,
    load_music,
    music_engine,
    stream_spec,
)
from service.playback import LivePlayback, settle_for_realtime
from testing.jack import JackReceiver, JackUnavailable, start_jack

Json = dict[str, Any]


@dataclass(frozen=True)
class Budget:
    fast_steps: int  # timed steps per fused-step variant
    naive_steps: int  # timed steps of the nn.LSTM loop
    latency_s: float  # at most this long per variant (bf16 without hardware support is slow), >= 30 steps
    throughput_s: float  # seconds per (batch size, model) pair
    stream_counts: tuple[int, ...]
    stream_s: float  # how long each stream count must be sustained
    jack_s: float
    first_note_trials: int
    sampling_trials: int  # per variant and batch size in the sampling section


FULL = Budget(3000, 300, 8.0, 3.0, (1, 16, 32, 64, 96, 128, 160, 192), 10.0, 10.0, 7, 2000)
QUICK = Budget(300, 40, 1.5, 0.7, (1, 32, 128), 3.0, 3.0, 3, 200)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def load_shipped(path: Path) -> tuple[MusicModel, str]:
    """The music checkpoint to benchmark, falling back to the training run's last checkpoint, then to random
    weights (said in the returned note)."""
    for candidate in (path, ROOT / "runs/music/last.pt"):
        try:
            mm = load_music(candidate)
            return mm, shown(candidate) if candidate == path else f"{shown(candidate)} ({shown(path)} missing)"
        except CheckpointError:
            continue
    model = RecurrentModel(ModelConfig(control_size=21)).eval()
    return MusicModel(model, CategoricalHead(388), PerformanceCodecConfig()), f"random 3x512 ({shown(path)} missing)"


def default_controls(config: ModelConfig, batch: int) -> torch.Tensor | None:
    if not config.control_size:
        return None
    return torch.from_numpy(control_vector(None, None)).float().expand(batch, -1).contiguous()


# ---- 1. batch-1 step latency ----
def step_latency(model: RecurrentModel, weights: Weights, codec: PerformanceCodecConfig, budget: Budget) -> Json:
    """One stream's step *and* sampling of its next event (default settings: temperature 1, no top-k/top-p),
    p50/p99 over ``budget`` steps, one torch thread. ``fast`` is the inference step with the weights loading
    chooses (``weights``); ``fast_masked`` adds the keyboard mask every served stream applies."""
    torch.set_num_threads(1)
    head = CategoricalHead(model.config.output_size)
    variants: dict[str, tuple[StepModel, int, bool]] = {
        "naive_nn_lstm": (model, budget.naive_steps, False),
        "fast": (FastStep(model, weights=weights), budget.fast_steps, False),
        "fast_masked": (FastStep(model, weights=weights), budget.fast_steps, True),
        "fast_float32": (FastStep(model, weights="float32"), budget.fast_steps, False),
    }
    ctrl = default_controls(model.config, 1)
    settings, gens = BatchSampling.of([SamplingConfig()]), generators_from_seeds([0])
    out: Json = {}
    for name, (step_model, n, masked) in variants.items():
        frontier = prime(step_model, [torch.tensor([300])], None if ctrl is None else [ctrl])
        mask = KeyboardMask.of(codec, [[300]]) if masked else None
        times: list[float] = []
        warm, end = max(10, n // 10), time.perf_counter() + budget.latency_s
        while len(times) < warm + n and (time.perf_counter() < end or len(times) < warm + 30):
            t0 = time.perf_counter()
            _, frontier = advance(step_model, head, frontier, settings, gens, ctrl, mask)
            times.append((time.perf_counter() - t0) * 1e3)
        times = times[warm:]  # the first tenth warms up
        out[name] = {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "steps": len(times),
                     "weights": getattr(step_model, "weights", "float32 (nn.LSTM)")}
    for name in ("fast", "fast_masked", "fast_float32"):
        out[name]["speedup_p50"] = out["naive_nn_lstm"]["p50_ms"] / out[name]["p50_ms"]
    return out


# ---- 2. events/s ----
def throughput(mm: MusicModel, budget: Budget, batches: tuple[int, ...] = (1, 8, 64, 128)) -> Json:
    """Events/s of B streams stepped together (step, keyboard mask and sampling, as the engine does), with every
    core (``events_per_s``) and with one torch thread; the naive nn.LSTM step with every core beside it."""
    cores = os.cpu_count() or 1
    out: Json = {"threads": cores}
    for b in batches:
        row: Json = {}
        for label, step_model, threads in (("", mm.fast, cores), ("_1_thread", mm.fast, 1),
                                            ("_naive_nn_lstm", mm.model, cores)):
            if label == "_naive_nn_lstm" and b > 64:
                continue
            torch.set_num_threads(threads)
            ctrl = default_controls(mm.model.config, b)
            frontier = prime(step_model, [torch.tensor([300])] * b, None if ctrl is None else [ctrl[:1]] * b)
            settings, gens = BatchSampling.of([SamplingConfig()] * b), generators_from_seeds(range(b))
            mask = KeyboardMask.of(mm.codec, [[300]] * b)
            for _ in range(3):  # warm up
                _, frontier = advance(step_model, mm.head, frontier, settings, gens, ctrl, mask)
            steps, t0 = 0, time.perf_counter()
            ends = []
            while (elapsed := time.perf_counter() - t0) < budget.throughput_s or steps < 3:
                _, frontier = advance(step_model, mm.head, frontier, settings, gens, ctrl, mask)
                steps += 1
                ends.append(time.perf_counter() - t0)
            row[f"events_per_s{label}"] = b * steps / elapsed
            row[f"step_ms{label}"] = elapsed / steps * 1e3
            row[f"events_per_s{label}_windows"] = window_rates(ends, b)
        out[f"b{b}"] = row
    torch.set_num_threads(1)
    return out


def window_rates(ends: list[float], batch: int, windows: int = 5) -> list[float]:
    """Events/s in each of ``windows`` equal spans of the timed steps (``ends``: each step's end, seconds from the
    start), in order: how steady the machine was while the mean was measured (the targets use the mean)."""
    n = len(ends) // windows
    if n < 1:
        return []
    cuts = [0.0] + [ends[(w + 1) * n - 1] for w in range(windows)]
    return [batch * n / (cuts[w + 1] - cuts[w]) for w in range(windows)]


# ---- 2b. sampling alone ----
def sampling_cost(mm: MusicModel, budget: Budget, batches: tuple[int, ...] = (1, 64)) -> Json:
    """Microseconds to sample B streams' next events through the keyboard mask and advance the mask (temperature 1,
    one torch thread), p50 over alternating trials on the same logits and masks: the one-pass C kernel (what serving
    uses where it builds, ``performance_rnn.heads.fast_sample``) and, as the baseline, the tensor ops it replaced
    (``KeyboardMask.apply``, ``CategoricalHead.sample_by_tensor_ops``, ``KeyboardMask.update``)."""
    torch.set_num_threads(1)
    out: Json = {"kernel_built": fast_sample.available(), "threads": 1}
    for b in batches:
        ctrl = default_controls(mm.model.config, b)
        frontier = prime(mm.fast, [torch.tensor([300])] * b, None if ctrl is None else [ctrl[:1]] * b)
        settings, gens = BatchSampling.of([SamplingConfig()] * b), generators_from_seeds(range(b))
        mask = KeyboardMask.of(mm.codec, [[300]] * b)
        for _ in range(32):  # a running stream's logits and keyboard
            _, frontier = advance(mm.fast, mm.head, frontier, settings, gens, ctrl, mask)
        rows, logits = torch.arange(b), frontier.params
        kernel: list[float] = []
        ops: list[float] = []
        for _ in range(budget.sampling_trials):
            m = mask.select(rows)
            t0 = time.perf_counter()
            m.sample(mm.head, logits, settings, gens)
            kernel.append((time.perf_counter() - t0) * 1e6)
            m = mask.select(rows)
            t0 = time.perf_counter()
            m.update(mm.head.sample_by_tensor_ops(m.apply(logits), settings, gens))
            ops.append((time.perf_counter() - t0) * 1e6)
        out[f"b{b}"] = {"kernel_p50_us": pct(kernel, 50), "tensor_ops_p50_us": pct(ops, 50),
                        "speedup_p50": pct(ops, 50) / pct(kernel, 50), "trials": len(kernel)}
    return out


# ---- 3-5. live streams ----
class NullPort:
    """An output that sends nowhere; remembers what it was sent, when (monotonic clock), and the first note-on."""

    def __init__(self) -> None:
        self.first_on: float | None = None
        self.sent: list[tuple[float, mido.Message]] = []

    def send(self, msg: mido.Message) -> None:
        t = time.monotonic()
        self.sent.append((t, msg))
        if self.first_on is None and msg.type == "note_on" and msg.velocity > 0:
            self.first_on = t

    def close(self) -> None:
        pass


Scheduled = tuple[float, int, tuple[int, ...], float]  # (time_s, order, message bytes, due_before_s)


class LoggingPlayer(Player):
    """A Player that remembers what it was given: (time_s, order, message bytes, due_before_s), where
    due_before_s > 0 says the message was already that late when scheduled (at a stream's start, when many
    streams start at once, a chord's later notes arrive steps after its first): no player can send those on time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scheduled: list[Scheduled] = []
        self.origin_s = 0.0  # the player's origin on the monotonic clock (set at the first schedule)
        self.stopped_at_s: float | None = None  # piece time when it was stopped
        self.by_id: dict[int, tuple[float, float, mido.Message]] = {}  # id(msg) -> (time_s, due_before_s, msg)

    def schedule(self, time_s: float, msg: mido.Message, *, timeout_s: float | None = None) -> None:
        due_before_s = self.piece_time() - time_s
        if not self.scheduled:
            self.origin_s = self._origin if self._origin is not None else time.monotonic()
        super().schedule(time_s, msg, timeout_s=timeout_s)
        self.scheduled.append((time_s, len(self.scheduled), tuple(msg.bytes()), due_before_s))
        self.by_id[id(msg)] = (time_s, due_before_s, msg)  # the player sends this very object (no channel set)

    def stop(self) -> None:
        if self.stopped_at_s is None:
            self.stopped_at_s = self.piece_time()  # what was due later was never sent: not to be compared
        super().stop()

    def send_errors_ms(self) -> list[float]:
        """Send time - due time, ms, of the messages scheduled before they were due, from a NullPort's record;
        what the player sent of its own (releases on stop, forced note-offs) is not in ``by_id``."""
        assert isinstance(self.port, NullPort)
        origin = time.monotonic() - self.piece_time()
        due = [(t, self.by_id.get(id(m))) for t, m in self.port.sent]
        return [(t - origin - d[0]) * 1e3 for t, d in due if d is not None and d[1] <= 0]


LATE_MS = 10.0  # a stream count is sustained when no message is sent later than this after its due time


def run_streams(mm: MusicModel, players: list[Player], seconds: float,
                poll: Callable[[], None] = lambda: None) -> Json:
    """N live streams (lookahead 0.2 s) through one engine, each played into its player, for ``seconds``.
    Sustained (``ok``): no message of any stream sent more than 10 ms after its due time (messages that were
    already due when the engine produced them count too), none dropped, and no underrun (a stream's generated
    music falling behind its wall clock after the first lookahead)."""
    lookahead = 0.2
    engine = music_engine(mm, max_streams=len(players)).start()
    streams = [engine.open(stream_spec(mm, seed=i, lookahead_s=lookahead)) for i in range(len(players))]
    lives = [LivePlayback(s, p, mm.codec).start() for s, p in zip(streams, players, strict=True)]
    headroom_min, underruns, samples = float("inf"), 0, 0
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        heads = [s.music_s - (now - s.started_at) for s in streams if now - s.started_at > lookahead]
        if heads:
            samples += 1
            headroom_min = min(headroom_min, *heads)
            underruns += any(h < 0 for h in heads)
        poll()
        time.sleep(0.01)
    for live in lives:
        live.stop()
    engine.stop()
    poll()
    st = [p.stats() for p in players]
    errors = [e * 1e3 for s in st for e in s.timing_errors_s]  # every sent message: send time - due time
    late, dropped = sum(s.late for s in st), sum(s.dropped for s in st)
    later = sum(e > LATE_MS for e in errors)
    logged = [p for p in players if isinstance(p, LoggingPlayer)]
    due_before = [d * 1e3 for p in logged for *_, d in p.scheduled if d > 0]
    in_time = [e for p in logged if isinstance(p.port, NullPort) for e in p.send_errors_ms()]
    return {"streams": len(players), "seconds": seconds, "sent": sum(s.sent for s in st), "late": late,
            "dropped": dropped, "underrun_samples": underruns, "samples": samples,
            "min_headroom_ms": headroom_min * 1e3 if samples else None,
            "send_error_p50_ms": pct(errors, 50), "send_error_p99_ms": pct(errors, 99),
            "scheduled_after_due": len(due_before), "scheduled_after_due_max_ms": max(due_before, default=0.0),
            "send_error_in_time_p99_ms": pct(in_time, 99), "send_error_in_time_max_ms": max(in_time, default=None),
            "later_than_10ms": later, "max_lateness_ms": max(errors, default=0.0),
            "engine_steps": engine.steps, "ok": later == 0 and dropped == 0 and underruns == 0}


def player_hub(shared: bool) -> PlayerHub | nullcontext[None]:
    """``with player_hub(shared) as hub:`` one hub for all of a trial's players, or None (a thread each)."""
    return PlayerHub() if shared else nullcontext()


def concurrent_streams(mm: MusicModel, budget: Budget, shared_hub: bool = True) -> Json:
    trials = []
    for n in budget.stream_counts:
        with player_hub(shared_hub) as hub:
            trials.append(run_streams(mm, [LoggingPlayer(NullPort(), hub=hub) for _ in range(n)], budget.stream_s))
        if not trials[-1]["ok"]:
            break  # larger counts only get worse: save the time
    ok = [t["streams"] for t in trials if t["ok"]]
    return {"players": "one shared PlayerHub thread" if shared_hub else "a thread per player",
            "max_sustained": max(ok, default=0), "trials": trials}


def clock_offset_s(port: Any, receiver: Any, probes: int = 20) -> float:
    """The receiver's JACK clock minus our monotonic clock, in seconds: ``probes`` messages sent at known times,
    ~3.7 ms apart (so they fall at different phases of JACK's 1.33 ms cycle); the smallest (received - sent) is
    the offset plus the shortest one-way delay, which is what a message sent just before a cycle sees."""
    receiver.poll()
    first = len(receiver.received)
    sent = []
    for i in range(probes):  # each probe carries its number, so one lost by JACK does not shift the others
        sent.append(time.monotonic())
        port.send(mido.Message("control_change", control=119, value=i))
        time.sleep(0.0037)
    deadline = time.monotonic() + 2.0
    while receiver.poll() < first + probes and time.monotonic() < deadline:
        time.sleep(0.002)
    got = [(t, m.value) for t, m in receiver.received[first:] if m.type == "control_change" and m.control == 119]
    del receiver.received[first:]
    if len(got) < probes // 2:
        raise RuntimeError(f"only {len(got)} of {probes} clock probes came back through JACK")
    return min(t - sent[i] for t, i in got if i < probes)


def timing_errors_ms(scheduled: list[Scheduled], received: list[tuple[float, mido.Message]], origin_s: float,
                     offset_s: float) -> Json:
    """Per message received: ``abs`` = (received, on our clock via ``offset_s``) - (due = ``origin_s`` + its time),
    ms, every message the player was given; ``in_time`` the same for those scheduled before they were due
    (see ``LoggingPlayer``); ``jitter`` = those minus their median (the earlier figure, blind to a constant
    delay). What the player added itself (releases on stop, forced note-offs) is not compared."""
    due = sorted(scheduled)
    pairs, j = [], 0  # (error ms, scheduled before it was due), paired in order
    for t_rx, msg in received:
        data, at = tuple(msg.bytes()), t_rx - offset_s - origin_s  # received, in the player's piece time
        # the same bytes, due within 100 ms (the player drops later ones): a note-off the player sent itself (the
        # 5 s duration guard) is not paired with the model's own note-off of that key, due later and swallowed
        k = next((k for k in range(j, min(j + 32, len(due))) if due[k][2] == data and abs(at - due[k][0]) < 0.1),
                 None)
        if k is not None:
            pairs.append(((at - due[k][0]) * 1e3, due[k][3] <= 0))
            j = k + 1
    in_time = [e for e, ok in pairs if ok]
    median = float(np.median(in_time)) if in_time else 0.0
    return {"abs": [e for e, _ in pairs], "in_time": in_time, "jitter": [abs(e - median) for e in in_time],
            "scheduled_after_due": len(pairs) - len(in_time)}


JACK_MEASURE = ("|received - due|, ms: each message's time as a frame-accurate JACK client records it (the time of "
                "its frame, as a DAW records it; midi_io.jack_timed.TimedJackInput) minus its due time, both on the "
                "monotonic clock; every message the player was given, also those already due when scheduled")


def jack_run(mm: MusicModel, budget: Budget, n: int, output: str, shared_hub: bool) -> Json:
    """N streams into N JACK ports of one kind: ``frame`` (TimedJackOutput, each message written at its due frame,
    the default on JACK) or ``rtmidi`` (python-rtmidi's output, sent when due: it lands at the first frame of the
    next cycle). A frame-stamped receiver on every port; on rtmidi ports also rtmidi's own JACK input, which stamps
    a message when its callback runs (``delivery_*``, the figure reported before frame-accurate output)."""
    from midi_io.jack_timed import TimedJackInput, TimedJackOutput
    from midi_io.ports import open_virtual_output

    names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    ports: list[Any] = ([TimedJackOutput(name) for name in names] if output == "frame"
                        else [open_virtual_output(name, api="jack") for name in names])
    frame_rx = [TimedJackInput(source=f"{name}:{name}") for name in names]
    rt_rx = [JackReceiver(p.name) for p in ports] if output == "rtmidi" else []
    for r, p in zip(rt_rx, ports, strict=False):  # rtmidi ports only
        r.handshake(p)
    offsets = [clock_offset_s(p, r) for p, r in zip(ports, rt_rx, strict=False)]
    time.sleep(0.1)
    frames: list[list[tuple[float, mido.Message]]] = [[] for _ in names]

    def poll() -> None:
        for rx, got in zip(frame_rx, frames, strict=True):
            got += [(t, mido.Message.from_bytes(list(d))) for t, d in rx.poll()]
        for r in rt_rx:
            r.poll()

    poll()
    for got in frames:
        got.clear()  # the handshake's probes
    with player_hub(shared_hub) as hub:
        players = [LoggingPlayer(p, hub=hub) for p in ports]
        res = run_streams(mm, list(players), budget.jack_s, poll)
    time.sleep(0.2)
    poll()
    port_stats = [p.stats() for p in ports] if output == "frame" else []
    frame_parts, rt_parts = [], []
    for i, p in enumerate(players):
        sent = [x for x in p.scheduled if p.stopped_at_s is None or x[0] <= p.stopped_at_s]
        frame_parts.append(timing_errors_ms(sent, frames[i], p.origin_s, 0.0))
        if rt_rx:
            rt_parts.append(timing_errors_ms(sent, rt_rx[i].received, p.origin_s, offsets[i]))
    for r in rt_rx:
        r.close()
    for rx in frame_rx:
        rx.close()
    for p in ports:
        p.close()

    def summary(parts: list[Json]) -> Json:
        joined = {k: [e for part in parts for e in part[k]] for k in ("abs", "in_time", "jitter")}
        a = [abs(e) for e in joined["abs"]]
        return {"p50_abs_error_ms": pct(a, 50), "p99_abs_error_ms": pct(a, 99),
                "max_abs_error_ms": max(a, default=None),
                "p99_abs_error_in_time_ms": pct([abs(e) for e in joined["in_time"]], 99),
                "p50_jitter_ms": pct(joined["jitter"], 50), "p99_jitter_ms": pct(joined["jitter"], 99),
                "compared": len(a), "scheduled_after_due": sum(part["scheduled_after_due"] for part in parts)}

    out: Json = {**summary(frame_parts), "received": sum(len(f) for f in frames),
                 **{k: res[k] for k in ("late", "dropped", "underrun_samples", "later_than_10ms")}}
    if port_stats:
        out["port_written_late"] = sum(st.late for st in port_stats)  # handed over after their cycle had run
        out["port_max_late_ms"] = max(st.max_late_ms for st in port_stats)
    if rt_parts:
        d = summary(rt_parts)
        out.update({"delivery_p50_abs_error_ms": d["p50_abs_error_ms"],
                    "delivery_p99_abs_error_ms": d["p99_abs_error_ms"],
                    "delivery_max_abs_error_ms": d["max_abs_error_ms"], "delivery_p99_jitter_ms": d["p99_jitter_ms"],
                    "delivery_compared": d["compared"]})
    return out


def jack_timing(mm: MusicModel, budget: Budget, counts: tuple[int, ...] = (1, 16), shared_hub: bool = True) -> Json:
    """N streams played through real JACK MIDI ports, each recorded by a second JACK client: how far from its due
    time each message lands (``JACK_MEASURE``), for the frame-accurate output and, as the baseline in the same run,
    rtmidi's. ``p99_abs_error_ms`` is the frame-accurate output's at 16 streams."""
    try:
        server = start_jack(rate=48000, period=64)
    except JackUnavailable as exc:
        return {"skipped": f"no JACK server: {exc}"}
    out: Json = {"server": server.command, "cycle_ms": 64 / 48000 * 1e3, "measured_as": JACK_MEASURE,
                 "delivery_measured_as": ("rtmidi ports only: the time rtmidi's JACK input callback ran (JACK's clock, "
                                          "offset by the smallest delay of 20 probes), as reported before")}
    try:
        for output in ("frame", "rtmidi"):
            out[output] = {f"streams_{n}": jack_run(mm, budget, n, output, shared_hub) for n in counts}
        if "streams_16" in out["frame"]:
            out["p99_abs_error_ms"] = out["frame"]["streams_16"]["p99_abs_error_ms"]
    finally:
        server.stop()
    return out


def ten_second_primer(mm: MusicModel) -> tuple[list[Note], str]:
    """10 s of notes from the held-out (test) split, else a generated 10 s performance."""
    from performance_rnn.tasks.music.build import load_split

    data_dir = ROOT / str(mm.meta.get("data", {}).get("dir", "data/music21-part"))
    try:
        names, pieces = load_split(data_dir, "test")
        i = next(i for i, a in enumerate(pieces) if len(a) and a[:, 3].max() >= 10.0)
        notes = [Note(int(p), int(v), float(s), min(float(e), 10.0)) for p, v, s, e in pieces[i] if s < 10.0]
        return notes, f"{data_dir.name}/test: {names[i]}, first 10 s ({len(notes)} notes)"
    except Exception:  # noqa: BLE001 - any data problem: generate instead
        notes = generate_performances(mm, seconds=10.0, seeds=[0])[0]
        return notes, f"generated 10 s performance ({len(notes)} notes)"


def first_note(mm: MusicModel, budget: Budget) -> Json:
    """A stream with a 10 s primer, opened on a running engine: ``latency`` = wall time from ``engine.open`` to
    the first note-on sent at the port, less the musical rest the model itself put before that note (its
    opening TIME_SHIFTs, which a pianist would also wait); ``wall`` = latency + that rest."""
    primer, source = ten_second_primer(mm)
    engine = music_engine(mm, max_streams=4).start()  # trial 1 pays first-use costs; the p50 a running server's
    trials = []
    for trial in range(budget.first_note_trials):
        spec = stream_spec(mm, seed=100 + trial, primer=primer, lookahead_s=0.2)
        port = NullPort()
        t0 = time.monotonic()
        stream = engine.open(spec)
        live = LivePlayback(stream, Player(port), mm.codec).start()
        while port.first_on is None and time.monotonic() - t0 < 10.0:
            time.sleep(0.0005)
        live.stop()
        if port.first_on is not None and live.first_note_at is not None:
            rest = live.first_note_at - stream.started_at
            trials.append({"latency_ms": (port.first_on - t0 - rest) * 1e3, "wall_ms": (port.first_on - t0) * 1e3,
                           "startup_ms": (stream.started_at - t0) * 1e3, "musical_rest_ms": rest * 1e3})
    engine.stop()
    out: Json = {"primer": source, "primer_tokens": int(spec.primer.shape[0]),
                 "primed_tokens": min(int(spec.primer.shape[0]), PRIME_WINDOW), "trials": trials}
    for key in ("latency_ms", "wall_ms", "startup_ms", "musical_rest_ms"):
        out[f"{key.removesuffix('_ms')}_p50_ms"] = pct([t[key] for t in trials], 50)
    out["p50_ms"] = out["latency_p50_ms"]
    return out


def jam_answer(mm: MusicModel, budget: Budget) -> Json:
    """Call-and-response: a 2 s phrase (from the 10 s primer's source) played into a ``Jam`` in real time, judged
    over after 0.3 s of silence. ``latency`` = first answer note-on sent - the moment the phrase was judged over
    - the model's own opening rest. The phrase is primed while it is played, so no priming remains to be done."""
    from midi_io.capture import CaptureConfig, PhraseCapture
    from service.jam import Jam, JamConfig

    notes = [n for n in ten_second_primer(mm)[0] if n.start_s < 2.0]
    events = sorted([(n.start_s, 1, n.pitch, n.velocity) for n in notes] + [(min(n.end_s, 2.0), 0, n.pitch, 0)
                                                                          for n in notes])
    engine = music_engine(mm, max_streams=4).start()
    port = NullPort()
    jam = Jam(mm, engine, PhraseCapture(CaptureConfig(silence_s=0.3)), port, JamConfig("call", response_s=0.5))
    stop = threading.Event()
    worker = threading.Thread(target=jam.run, args=(stop,), daemon=True)
    worker.start()
    trials = []
    try:
        for trial in range(budget.first_note_trials):
            t0 = time.monotonic()
            for at, on, pitch, velocity in events:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                kind = "note_on" if on else "note_off"
                jam.feed(mido.Message(kind, note=pitch, velocity=velocity), time.monotonic())
            deadline = time.monotonic() + 10
            while jam.responses <= trial and time.monotonic() < deadline:
                time.sleep(0.005)
            live, judged = jam._live, jam.judged_at
            if live is None or judged is None or live.first_note_music_s is None:
                continue
            first = next((t for t, m in port.sent if t > judged and m.type == "note_on" and m.velocity > 0), None)
            if first is not None:
                trials.append({"latency_ms": (first - judged - live.first_note_music_s) * 1e3,
                               "wall_ms": (first - judged) * 1e3, "musical_rest_ms": live.first_note_music_s * 1e3})
    finally:
        stop.set()
        worker.join(timeout=10)
        engine.stop()
    out: Json = {"phrase_notes": len(notes), "trials": trials}
    for key in ("latency_ms", "wall_ms", "musical_rest_ms"):
        out[f"{key.removesuffix('_ms')}_p50_ms"] = pct([t[key] for t in trials], 50)
    out["p50_ms"] = out["latency_p50_ms"]
    return out


# ---- report ----
def table(r: Json) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None or math.isnan(x) else f"{x:.3g}"

    rows = [("section", "figure", "value")]
    for model, lat in r["step_latency"].items():
        for v, d in lat.items():
            extra = f", {d['speedup_p50']:.1f}x vs naive" if "speedup_p50" in d else ""
            rows.append((f"1 step+sample b1 [{model}]", f"{v} ({d['weights']})",
                         f"p50 {f(d['p50_ms'])} ms, p99 {f(d['p99_ms'])} ms{extra}"))
    tp = r["throughput"]
    for k, d in ((k, d) for k, d in tp.items() if k.startswith("b")):
        naive = f", naive nn.LSTM {d['events_per_s_naive_nn_lstm']:.0f}" if "events_per_s_naive_nn_lstm" in d else ""
        spread = d.get("events_per_s_windows") or [math.nan]
        rows.append(("2 events/s (step+mask+sample)", k, (f"{d['events_per_s']:.0f} ev/s with {tp['threads']} threads "
                     f"({f(d['step_ms'])} ms/step; {len(spread)} windows {min(spread):.0f}-{max(spread):.0f}), "
                     f"1 thread {d['events_per_s_1_thread']:.0f}{naive}")))
    sc = r["sampling"]
    for k, d in ((k, d) for k, d in sc.items() if k.startswith("b")):
        rows.append(("2b sampling+mask, 1 thread", k, (f"one C pass p50 {f(d['kernel_p50_us'])} us"
                     f"{'' if sc['kernel_built'] else ' (NOT BUILT: tensor ops)'}; tensor ops (baseline) p50 "
                     f"{f(d['tensor_ops_p50_us'])} us: {d['speedup_p50']:.1f}x")))
    for t in r["streams"]["trials"]:
        rows.append(("3 live streams", f"N={t['streams']}", (f"{'ok' if t['ok'] else 'FAIL'}: later than 10 ms "
                     f"{t['later_than_10ms']} (max lateness {f(t['max_lateness_ms'])} ms), dropped {t['dropped']}, "
                     f"underrun {t['underrun_samples']}/{t['samples']}, min headroom {f(t['min_headroom_ms'])} ms, "
                     f"send err p99 {f(t['send_error_p99_ms'])} ms")))
    gc_note = ", settled for real time" if r.get("settled_for_realtime") else ""
    rows.append(("3 live streams", "max sustained", (f"{r['streams']['max_sustained']} with no message later than "
                 f"10 ms ({r['streams']['players']}{gc_note})")))
    jt = r["jack"]
    if "skipped" in jt:
        rows.append(("4 JACK timing", "skipped", jt["skipped"]))
    for output in ("frame", "rtmidi"):
        for k, d in jt.get(output, {}).items():
            rows.append(("4 JACK timing", f"{output} output, {k}", (
                f"|recorded at frame - due| p50 {f(d['p50_abs_error_ms'])} ms, p99 {f(d['p99_abs_error_ms'])} ms, "
                f"max {f(d['max_abs_error_ms'])} ms (n={d['compared']}, {d['scheduled_after_due']} already due when "
                f"scheduled); jitter p99 {f(d['p99_jitter_ms'])} ms")))
            if "delivery_p99_abs_error_ms" in d:
                rows.append(("4 JACK timing", f"{output} output, {k}", (
                    f"|rtmidi input callback - due| p50 {f(d['delivery_p50_abs_error_ms'])} ms, p99 "
                    f"{f(d['delivery_p99_abs_error_ms'])} ms (n={d['delivery_compared']})")))
    fn = r["first_note"]
    rows.append(("5 first note", f"10 s primer ({fn['primer_tokens']} events, last {fn['primed_tokens']} primed)",
                 (f"latency p50 {f(fn['latency_p50_ms'])} ms (startup "
                  f"{f(fn['startup_p50_ms'])} ms incl. priming); wall p50 {f(fn['wall_p50_ms'])} ms = latency + the "
                  f"model's opening rest (p50 {f(fn['musical_rest_p50_ms'])} ms)")))
    ja = r["jam"]
    rows.append(("6 jam answer", f"{ja['phrase_notes']}-note phrase", (
        f"latency p50 {f(ja['latency_p50_ms'])} ms after the phrase is judged over "
        f"(less the model's opening rest, p50 {f(ja['musical_rest_p50_ms'])} ms)")))
    w = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c}" for a, b, c in rows)


def targets(r: Json) -> Json:
    fast = r["step_latency"]["default_3x512"]["fast"]
    big = max(r["throughput"]["b64"]["events_per_s"], 0.0)
    j16 = r["jack"].get("frame", {}).get("streams_16", {})
    fn = r["first_note"]["p50_ms"]
    return {
        "step_and_sample_p50_le_0.35ms_default_3x512": {"measured": fast["p50_ms"], "met": fast["p50_ms"] <= 0.35},
        "step_and_sample_p99_le_0.6ms_default_3x512": {"measured": fast["p99_ms"], "met": fast["p99_ms"] <= 0.6},
        "speedup_vs_naive_nn_lstm_ge_15x": {"measured": fast["speedup_p50"], "met": fast["speedup_p50"] >= 15},
        "events_per_s_b64_ge_30000": {"measured": big, "met": big >= 30000},
        "streams_none_later_than_10ms_ge_128": {"measured": r["streams"]["max_sustained"],
                                                "met": r["streams"]["max_sustained"] >= 128},
        "jack_p99_abs_error_le_1.5ms_at_16": {"measured": j16.get("p99_abs_error_ms"),
                                              "met": (j16.get("p99_abs_error_ms") or 1e9) <= 1.5},
        "first_note_latency_p50_le_50ms": {"measured": fn, "met": not math.isnan(fn) and fn <= 50.0},
        "jam_first_answer_latency_p50_le_15ms": {
            "measured": r["jam"]["p50_ms"], "met": not math.isnan(r["jam"]["p50_ms"]) and r["jam"]["p50_ms"] <= 15.0},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds per section (development)")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints/music.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/realtime.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for sections 2-5 (section 1 uses 1)")
    ap.add_argument("--player-threads", action="store_true",
                    help="sections 3-4: a thread per player instead of one shared PlayerHub (for comparison)")
    ap.add_argument("--no-settle", dest="settle", action="store_false",
                    help="do not settle the process for real time after loading the model (perfrnn play/jam/serve "
                         "do: gc.freeze(), and a 0.5 ms GIL switch interval; see service.playback.settle_for_realtime)")
    args = ap.parse_args(argv)
    budget = QUICK if args.quick else FULL
    logging.getLogger("midi_io.player").setLevel(logging.ERROR)  # late events are counted in the stats
    torch.manual_seed(0)
    mm, source = load_shipped(args.checkpoint)
    r: Json = {"machine": machine_info(), "quick": args.quick, "budget": budget.__dict__, "checkpoint": source,
               "shipped_config": mm.model.config.__dict__, "shipped_weights": mm.weights}
    print(f"checkpoint: {source} ({mm.weights} weights)", flush=True)
    default = RecurrentModel(ModelConfig(control_size=21)).eval()
    start = encode_event(Event(EventType.VELOCITY, 20), mm.codec)
    default_weights = choose_weights(default, start, default_controls(default.config, 1))
    r["step_latency"] = {"shipped": step_latency(mm.model, mm.weights, mm.codec, budget),
                         "default_3x512": step_latency(default, default_weights, mm.codec, budget)}
    torch.set_num_threads(args.threads)
    r["machine"]["torch_threads"] = {"step_latency": 1, "other_sections": args.threads}
    r["settled_for_realtime"] = args.settle
    if args.settle:
        settle_for_realtime()
    shared = not args.player_threads
    sections: tuple[tuple[str, Callable[[MusicModel, Budget], Json]], ...] = (
        ("throughput", throughput), ("sampling", sampling_cost),
        ("streams", lambda m, b: concurrent_streams(m, b, shared_hub=shared)),
        ("jack", lambda m, b: jack_timing(m, b, shared_hub=shared)), ("first_note", first_note), ("jam", jam_answer))
    for key, fn in sections:
        print(f"running {key} ...", flush=True)
        r[key] = fn(mm, budget)
    r["targets"] = targets(r)
    r["machine"]["loadavg_at_end"] = list(os.getloadavg())
    print(table(r))
    print("targets: " + ", ".join(f"{k}={'met' if v['met'] else 'MISSED'}" for k, v in r["targets"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
