"""Real-time benchmark: step latency, throughput, concurrent live streams, MIDI timing through JACK, time to
first note. Prints a table and writes JSON with the machine it ran on.

    python -m bench.realtime [--quick] [--checkpoint PATH] [--out bench/results/realtime.json] [--threads N]
                             [--player-threads] [--gc-freeze]

Every figure is measured in this run, the naive ``nn.LSTM`` per-step loop (``RecurrentModel.step``) included.
Batch-1 latency runs with ``torch.set_num_threads(1)``; the other sections with ``--threads`` (default 1).
Sections 3 and 4 play every stream's player on one shared ``PlayerHub`` thread, as a server does;
``--player-threads`` gives each player its own thread instead (for comparison).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import mido
import numpy as np
import torch

from midi_io.notes import Note
from midi_io.player import Player, PlayerHub
from performance_rnn.codecs.controls import control_vector
from performance_rnn.codecs.performance import PerformanceCodecConfig
from performance_rnn.config import ModelConfig, SamplingConfig
from performance_rnn.errors import CheckpointError
from performance_rnn.fast_step import FastStep
from performance_rnn.heads import BatchSampling, CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.music import MusicModel, generate_performances, load_music, music_engine, stream_spec
from performance_rnn.sampling import StepModel, advance, generators_from_seeds, prime
from service.live import LivePlayback

ROOT = Path(__file__).resolve().parents[1]
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


FULL = Budget(3000, 300, 8.0, 3.0, (1, 8, 16, 32, 48, 64, 96), 10.0, 10.0, 7)
QUICK = Budget(300, 40, 1.5, 0.7, (1, 16, 32, 64), 3.0, 3.0, 3)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def machine_info() -> Json:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": list(os.getloadavg())}


def load_shipped(path: Path) -> tuple[MusicModel, str]:
    """The music checkpoint to benchmark, falling back to the training run's last checkpoint, then to random
    weights (said in the returned note)."""
    for candidate in (path, ROOT / "runs/music/last.pt"):
        try:
            mm = load_music(candidate)
            return mm, str(candidate) if candidate == path else f"{candidate} ({path} missing)"
        except CheckpointError:
            continue
    model = RecurrentModel(ModelConfig(control_size=21)).eval()
    return MusicModel(model, CategoricalHead(388), PerformanceCodecConfig()), f"random 3x512 ({path} missing)"


def default_controls(config: ModelConfig, batch: int) -> torch.Tensor | None:
    if not config.control_size:
        return None
    return torch.from_numpy(control_vector(None, None)).float().expand(batch, -1).contiguous()


# ---- 1. batch-1 step latency ----
def step_latency(model: RecurrentModel, budget: Budget) -> Json:
    torch.set_num_threads(1)
    variants: dict[str, tuple[StepModel, int]] = {
        "naive_nn_lstm": (model, budget.naive_steps),
        "fast_fp32": (FastStep(model), budget.fast_steps),
        "fast_bf16": (FastStep(model, weight_dtype=torch.bfloat16), budget.fast_steps),
    }
    ctrl = default_controls(model.config, 1)
    out: Json = {}
    for name, (step_model, n) in variants.items():
        state = model.initial_state(1)
        token = torch.tensor([300])
        times: list[float] = []
        warm, end = max(10, n // 10), time.perf_counter() + budget.latency_s
        with torch.no_grad():
            while len(times) < warm + n and (time.perf_counter() < end or len(times) < warm + 30):
                t0 = time.perf_counter()
                params, state = step_model.step(token, state, ctrl)
                token = params.argmax(-1)
                times.append((time.perf_counter() - t0) * 1e3)
        times = times[warm:]  # the first tenth warms up
        out[name] = {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "steps": len(times)}
    for name in ("fast_fp32", "fast_bf16"):
        out[name]["speedup_p50"] = out["naive_nn_lstm"]["p50_ms"] / out[name]["p50_ms"]
    return out


# ---- 2. events/s ----
def throughput(mm: MusicModel, budget: Budget, batches: tuple[int, ...] = (1, 8, 64)) -> Json:
    out: Json = {}
    for label, step_model in (("fast_fp32", FastStep(mm.model)), ("naive_nn_lstm", mm.model)):
        for b in batches:
            frontier = prime(step_model, [torch.tensor([300])] * b,
                             None if not mm.conditioned else [default_controls(mm.model.config, 1)] * b)
            settings, gens = BatchSampling.of([SamplingConfig()] * b), generators_from_seeds(range(b))
            ctrl = default_controls(mm.model.config, b)
            steps, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < budget.throughput_s or steps < 3:
                _, frontier = advance(step_model, mm.head, frontier, settings, gens, ctrl)
                steps += 1
            out[f"{label}_b{b}"] = {"events_per_s": b * steps / elapsed, "step_ms": elapsed / steps * 1e3}
            if label == "fast_fp32":  # how much of a step is sampling (sort, cumsum, one RNG draw per stream)
                t0 = time.perf_counter()
                for _ in range(20):
                    mm.head.sample(frontier.params, settings, gens)
                out[f"{label}_b{b}"]["sample_ms"] = (time.perf_counter() - t0) / 20 * 1e3
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
        self.by_id: dict[int, tuple[float, float, mido.Message]] = {}  # id(msg) -> (time_s, due_before_s, msg)

    def schedule(self, time_s: float, msg: mido.Message, *, timeout_s: float | None = None) -> None:
        due_before_s = self.piece_time() - time_s
        super().schedule(time_s, msg, timeout_s=timeout_s)
        self.scheduled.append((time_s, len(self.scheduled), tuple(msg.bytes()), due_before_s))
        self.by_id[id(msg)] = (time_s, due_before_s, msg)  # the player sends this very object (no channel set)

    def send_errors_ms(self) -> list[float]:
        """Send time - due time, ms, of the messages scheduled before they were due, from a NullPort's record;
        what the player sent of its own (releases on stop, forced note-offs) is not in ``by_id``."""
        assert isinstance(self.port, NullPort)
        origin = time.monotonic() - self.piece_time()
        due = [(t, self.by_id.get(id(m))) for t, m in self.port.sent]
        return [(t - origin - d[0]) * 1e3 for t, d in due if d is not None and d[1] <= 0]


def run_streams(mm: MusicModel, players: list[Player], seconds: float,
                poll: Callable[[], None] = lambda: None) -> Json:
    """N live streams (lookahead 0.2 s) through one engine, each played into its player, for ``seconds``.
    Underrun: a stream's generated music falls behind its wall clock after the first lookahead."""
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
            headroom_min = min(headroom_min, min(heads))
            underruns += any(h < 0 for h in heads)
        poll()
        time.sleep(0.01)
    for live in lives:
        live.stop()
    engine.stop()
    poll()
    st = [p.stats() for p in players]
    errors = [e * 1e3 for s in st for e in s.timing_errors_s]
    late, dropped = sum(s.late for s in st), sum(s.dropped for s in st)
    logged = [p for p in players if isinstance(p, LoggingPlayer)]
    due_before = [d * 1e3 for p in logged for *_, d in p.scheduled if d > 0]
    in_time = [e for p in logged if isinstance(p.port, NullPort) for e in p.send_errors_ms()]
    return {"streams": len(players), "seconds": seconds, "sent": sum(s.sent for s in st), "late": late,
            "dropped": dropped, "underrun_samples": underruns, "samples": samples,
            "min_headroom_ms": headroom_min * 1e3 if samples else None,
            "send_error_p50_ms": pct(errors, 50), "send_error_p99_ms": pct(errors, 99),
            "scheduled_after_due": len(due_before), "scheduled_after_due_max_ms": max(due_before, default=0.0),
            "send_error_in_time_p99_ms": pct(in_time, 99), "send_error_in_time_max_ms": max(in_time, default=None),
            "engine_steps": engine.steps, "ok": late == 0 and dropped == 0 and underruns == 0}


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


def timing_errors_ms(scheduled: list[Scheduled], received: list[tuple[float, mido.Message]]) -> Json:
    """|received - scheduled| on JACK's clock, which is not ours: the offset between the clocks is the median of
    (received - due) over the messages scheduled before they were due; those already due when scheduled (see
    ``LoggingPlayer``) are counted, not compared. ``first_aligned``: the earlier measure, aligned on the first
    message, which shifts every error by that message's lateness."""
    due = sorted(scheduled)
    pairs, j = [], 0  # (time received, time_s due, scheduled before it was due), paired in order, skipping
    for t_rx, msg in received:  # what the player added itself (its releases on stop, forced note-offs)
        data = tuple(msg.bytes())
        k = next((k for k in range(j, min(j + 32, len(due))) if due[k][2] == data), None)
        if k is not None:
            pairs.append((t_rx, due[k][0], due[k][3] <= 0))
            j = k + 1
    in_time = [(t, d) for t, d, ok in pairs if ok]
    offset = float(np.median([t - d for t, d in in_time])) if in_time else 0.0
    first = [abs((t - pairs[0][0]) - (d - pairs[0][1])) * 1e3 for t, d, _ in pairs[1:]]
    return {"errors": [abs(t - d - offset) * 1e3 for t, d in in_time], "first_aligned": first,
            "scheduled_after_due": len(pairs) - len(in_time)}


def load_midi_test_helpers() -> ModuleType:
    """tests/midi_io/conftest.py by path (an installed package owns the top-level name "tests"): its
    JackReceiver (polls a second JACK client; times on JACK's clock) and, as ``.jack``, tests/jack.py."""
    spec = importlib.util.spec_from_file_location("perfrnn_midi_conftest", ROOT / "tests/midi_io/conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def jack_timing(mm: MusicModel, budget: Budget, counts: tuple[int, ...] = (1, 16), shared_hub: bool = True) -> Json:
    from midi_io.ports import open_virtual_output

    try:
        helpers = load_midi_test_helpers()
        server = helpers.jack.start_jack(rate=48000, period=64)
    except Exception as exc:  # noqa: BLE001 - JackUnavailable, or no pytest/rtmidi to load the helpers
        return {"skipped": f"no JACK server: {exc}"}
    out: Json = {"server": "started jackd -d dummy -r 48000 -p 64" if server.process else "reused running server"}
    try:
        for n in counts:
            ports = [open_virtual_output(f"bench-{uuid.uuid4().hex[:8]}", api="jack") for _ in range(n)]
            receivers = [helpers.JackReceiver(p.name) for p in ports]
            for r, p in zip(receivers, ports, strict=True):
                r.handshake(p)
            with player_hub(shared_hub) as hub:
                players = [LoggingPlayer(p, hub=hub) for p in ports]
                res = run_streams(mm, list(players), budget.jack_s, lambda: [r.poll() for r in receivers])
            time.sleep(0.2)
            errors, first_aligned, after_due = [], [], 0
            for r, p in zip(receivers, players, strict=True):
                r.poll()
                te = timing_errors_ms(p.scheduled, r.received)
                errors += te["errors"]
                first_aligned += te["first_aligned"]
                after_due += te["scheduled_after_due"]
            received = sum(len(r.received) for r in receivers)
            for r in receivers:
                r.close()
            for p in ports:
                p.close()
            out[f"streams_{n}"] = {"p50_ms": pct(errors, 50), "p99_ms": pct(errors, 99), "compared": len(errors),
                                   "scheduled_after_due": after_due, "received": received,
                                   "first_aligned_p50_ms": pct(first_aligned, 50),
                                   "first_aligned_p99_ms": pct(first_aligned, 99),
                                   **{k: res[k] for k in ("late", "dropped", "underrun_samples")}}
    finally:
        server.stop()
    return out


def ten_second_primer(mm: MusicModel) -> tuple[list[Note], str]:
    """10 s of notes from the held-out (test) split, else a generated 10 s performance."""
    from performance_rnn.data.build import load_split

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
            trials.append({"first_note_ms": (port.first_on - t0) * 1e3, "startup_ms": (stream.started_at - t0) * 1e3,
                           "musical_rest_ms": (live.first_note_at - stream.started_at) * 1e3})
    engine.stop()
    out: Json = {"primer": source, "primer_tokens": int(spec.primer.shape[0]), "trials": trials}
    for key in ("first_note_ms", "startup_ms", "musical_rest_ms"):
        out[f"{key}_p50"] = pct([t[key] for t in trials], 50)
    return out


# ---- report ----
def table(r: Json) -> str:
    f = lambda x: "n/a" if x is None or x != x else f"{x:.3g}"  # noqa: E731
    rows = [("section", "figure", "value")]
    for model, lat in r["step_latency"].items():
        for v, d in lat.items():
            extra = f", {d['speedup_p50']:.1f}x vs naive" if "speedup_p50" in d else ""
            rows.append((f"1 step b1 [{model}]", v, f"p50 {f(d['p50_ms'])} ms, p99 {f(d['p99_ms'])} ms{extra}"))
    for k, d in r["throughput"].items():
        sample = f", sampling {f(d['sample_ms'])} ms" if "sample_ms" in d else ""
        rows.append(("2 events/s", k, f"{d['events_per_s']:.0f} ev/s ({f(d['step_ms'])} ms/step{sample})"))
    for t in r["streams"]["trials"]:
        rows.append(("3 live streams", f"N={t['streams']}", f"{'ok' if t['ok'] else 'FAIL'}: late {t['late']}, dropped "
                     f"{t['dropped']}, underrun {t['underrun_samples']}/{t['samples']}, min headroom "
                     f"{f(t['min_headroom_ms'])} ms, send err p99 {f(t['send_error_p99_ms'])} ms; "
                     f"{t['scheduled_after_due']} due before scheduled (max {f(t['scheduled_after_due_max_ms'])} ms), "
                     f"the rest p99 {f(t['send_error_in_time_p99_ms'])} max {f(t['send_error_in_time_max_ms'])} ms"))
    gc_note = ", gc frozen" if r.get("gc_frozen") else ""
    rows.append(("3 live streams", "max sustained",
                 f"{r['streams']['max_sustained']} ({r['streams']['players']}{gc_note})"))
    jt = r["jack_timing"]
    if "skipped" in jt:
        rows.append(("4 JACK timing", "skipped", jt["skipped"]))
    for k, d in ((k, d) for k, d in jt.items() if k.startswith("streams_")):
        rows.append(("4 JACK timing", k, f"|rx - scheduled| p50 {f(d['p50_ms'])} ms, p99 {f(d['p99_ms'])} ms "
                     f"(n={d['compared']}, {d['scheduled_after_due']} due before scheduled left out, late {d['late']}; "
                     f"aligned on the first message: p99 {f(d['first_aligned_p99_ms'])} ms)"))
    fn = r["first_note"]
    rows.append(("5 first note", "10 s primer", f"p50 {f(fn['first_note_ms_p50'])} ms (startup "
                 f"{f(fn['startup_ms_p50'])} ms + musical rest {f(fn['musical_rest_ms_p50'])} ms)"))
    w = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c}" for a, b, c in rows)


def targets(r: Json) -> Json:
    fast = r["step_latency"]["default_3x512"]["fast_fp32"]
    j16 = r["jack_timing"].get("streams_16", {})
    return {
        "step_p50_ms_le_1_default_3x512": {"measured": fast["p50_ms"], "met": fast["p50_ms"] <= 1.0},
        "speedup_ge_10x": {"measured": fast["speedup_p50"], "met": fast["speedup_p50"] >= 10},
        "streams_ge_32": {"measured": r["streams"]["max_sustained"], "met": r["streams"]["max_sustained"] >= 32},
        "jack_p99_ms_le_3_at_16": {"measured": j16.get("p99_ms"), "met": j16.get("p99_ms", 1e9) <= 3.0},
        "first_note_ms_le_100": {"measured": r["first_note"]["first_note_ms_p50"],
                                 "met": (r["first_note"]["first_note_ms_p50"] or 1e9) <= 100.0},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds per section (development)")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints/music.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/realtime.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for sections 2-5 (section 1 uses 1)")
    ap.add_argument("--player-threads", action="store_true",
                    help="sections 3-4: a thread per player instead of one shared PlayerHub (for comparison)")
    ap.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                    help="do not gc.freeze() after loading the model (perfrnn play/jam/serve do freeze: a full "
                         "collection holds the GIL ~100 ms with torch loaded and would stall the players)")
    args = ap.parse_args(argv)
    budget = QUICK if args.quick else FULL
    logging.getLogger("midi_io.player").setLevel(logging.ERROR)  # late events are counted in the stats
    torch.manual_seed(0)
    mm, source = load_shipped(args.checkpoint)
    r: Json = {"machine": machine_info(), "quick": args.quick, "budget": budget.__dict__, "checkpoint": source,
               "shipped_config": mm.model.config.__dict__}
    print(f"checkpoint: {source}", flush=True)
    r["step_latency"] = {"shipped": step_latency(mm.model, budget),
                         "default_3x512": step_latency(RecurrentModel(ModelConfig(control_size=21)).eval(), budget)}
    torch.set_num_threads(args.threads)
    r["machine"]["torch_threads"] = {"step_latency": 1, "other_sections": args.threads}
    r["gc_frozen"] = args.gc_freeze
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    shared = not args.player_threads
    sections: tuple[tuple[str, Callable[[MusicModel, Budget], Json]], ...] = (
        ("throughput", throughput), ("streams", lambda m, b: concurrent_streams(m, b, shared_hub=shared)),
        ("jack_timing", lambda m, b: jack_timing(m, b, shared_hub=shared)), ("first_note", first_note))
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
