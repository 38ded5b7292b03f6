"""Service benchmark, through a real ``perfrnn serve`` process: latency of a 30 s render over HTTP next to
the same render in-process, requests/s for short renders (1 client vs 8 concurrent), and how many concurrent
WebSocket streams stay in real time. Prints a table and writes JSON with the machine it ran on.

    python -m bench.service [--quick] [--checkpoint checkpoints/music.pt] [--out bench/results/service.json]

A WebSocket note-on is late when it arrives after its due time (``at`` from the client's ``started``) plus
``LATE_TOLERANCE_S``; a stream count is sustained when none of its steady-state note-ons (due ``WARMUP_S`` or
more into the stream) is late. Notes due in the first ``WARMUP_S`` cannot arrive a lookahead early (the
stream has just been admitted and primed): their lateness is reported on its own.
Note-offs are left out: one forced by the decoder's maximum note length is due when the music clock has
already passed it, by design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
import websockets

from bench.common import ROOT, machine_info, shown
from performance_rnn.config import SamplingConfig
from performance_rnn.tasks.music.generate import generate_performances, load_music

LATE_TOLERANCE_S = 0.02  # scheduling slack on a shared machine; the web page buffers 0.15 s
WARMUP_S = 0.5  # notes due this early in a stream are reported apart (start-up, not steady state)
Json = dict[str, Any]


@dataclass(frozen=True)
class Budget:
    render_reps: int  # 30 s renders timed, through the API and in-process
    short_s: float  # seconds of music per short render
    rps_window_s: float  # how long each requests/s run lasts
    stream_counts: tuple[int, ...]
    stream_s: float  # how long each stream count must be sustained


FULL = Budget(render_reps=3, short_s=1.0, rps_window_s=10.0, stream_counts=(1, 4, 8, 16, 32, 64), stream_s=8.0)
QUICK = Budget(render_reps=1, short_s=1.0, rps_window_s=4.0, stream_counts=(1, 4, 8), stream_s=4.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``perfrnn serve`` on a free loopback port, serving ``checkpoint`` as its music model."""

    def __init__(self, checkpoint: Path, threads: int) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="bench-ckpt-")
        (Path(self.dir.name) / "music.pt").symlink_to(checkpoint.resolve())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port), "--checkpoints-dir", self.dir.name,
             "--max-renders", "64", "--max-live-streams", "128", "--max-render-seconds", "60",
             "--threads", str(threads), "--log-level", "warning"], cwd=ROOT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("perfrnn serve exited")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).json()["models"]["music"]:
                    return
            except (httpx.TransportError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("perfrnn serve did not come up")
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.dir.cleanup()


def render_latency(server: Server, checkpoint: Path, budget: Budget) -> Json:
    """30 s of music: POST /api/music/render (engine, fused step) vs generate_performances in this process."""
    api = []
    with httpx.Client(timeout=300) as client:
        for rep in range(budget.render_reps):
            t = time.perf_counter()
            r = client.post(f"{server.url}/api/music/render", json={"seconds": 30, "seed": rep})
            api.append(time.perf_counter() - t)
            r.raise_for_status()
    mm = load_music(checkpoint)
    direct = []
    for rep in range(budget.render_reps):
        t = time.perf_counter()
        generate_performances(mm, seconds=30, seeds=[rep], sampling=SamplingConfig())
        direct.append(time.perf_counter() - t)
    return {"api_s": api, "api_p50_s": statistics.median(api), "in_process_s": direct,
            "in_process_p50_s": statistics.median(direct),
            "api_over_in_process": statistics.median(api) / statistics.median(direct)}


async def _rps(url: str, clients: int, window_s: float, seconds: float) -> Json:
    done, codes, latencies = 0, dict[int, int](), list[float]()
    stop_at = time.perf_counter() + window_s

    async def worker(client: httpx.AsyncClient, k: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            r = await client.post(f"{url}/api/music/render", json={"seconds": seconds, "seed": k * 10_000 + i})
            latencies.append(time.perf_counter() - t)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            done += r.status_code == 200
            i += 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(worker(client, k) for k in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "ok": done, "wall_s": wall, "requests_per_s": done / wall, "status_codes": codes,
            "latency_p50_s": statistics.median(latencies), "latency_p99_s": _pct(latencies, 99)}


def short_renders(server: Server, budget: Budget) -> Json:
    return {"seconds_of_music": budget.short_s,
            "runs": [asyncio.run(_rps(server.url, c, budget.rps_window_s, budget.short_s)) for c in (1, 8)]}


async def _streams(url: str, n: int, seconds: float) -> Json:
    ws_url = url.replace("http://", "ws://") + "/api/live"
    lateness: list[float] = []  # steady state: arrival - due, seconds
    warmup: list[float] = []  # the same for notes due in the first WARMUP_S
    refused = 0

    async def one(k: int) -> None:
        nonlocal refused
        async with websockets.connect(ws_url, max_size=2**20) as ws:
            await ws.send(json.dumps({"type": "start", "seed": k}))
            started = json.loads(await ws.recv())
            if started["type"] != "started":
                refused += 1
                return
            t0 = time.perf_counter()
            while (remaining := seconds - (time.perf_counter() - t0)) > 0:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), remaining))
                except TimeoutError:
                    break
                if msg["type"] != "note" or not msg["on"]:
                    continue
                (lateness if msg["at"] >= WARMUP_S else warmup).append((time.perf_counter() - t0) - msg["at"])
            await ws.send(json.dumps({"type": "stop"}))
            while json.loads(await ws.recv())["type"] != "end":
                pass

    await asyncio.gather(*(one(k) for k in range(n)))
    late = sum(x > LATE_TOLERANCE_S for x in lateness)
    return {"streams": n, "note_ons": len(lateness), "late": late, "late_fraction": late / max(1, len(lateness)),
            "refused": refused, "lateness_p50_s": _pct(lateness, 50), "lateness_p99_s": _pct(lateness, 99),
            "lateness_max_s": max(lateness, default=None), "warmup_notes": len(warmup),
            "warmup_lateness_max_s": max(warmup, default=None),
            "sustained": refused == 0 and len(lateness) > 0 and late == 0}


def concurrent_streams(server: Server, budget: Budget) -> Json:
    runs = []
    for n in budget.stream_counts:
        print(f"  {n} WebSocket streams for {budget.stream_s:g} s ...", flush=True)
        runs.append(asyncio.run(_streams(server.url, n, budget.stream_s)))
        if not runs[-1]["sustained"]:
            break
    ok = [r["streams"] for r in runs if r["sustained"]]
    return {"runs": runs, "max_sustained": max(ok, default=0), "late_tolerance_s": LATE_TOLERANCE_S,
            "warmup_s": WARMUP_S}


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:+.0f} ms"


def table(r: Json) -> str:
    lat = r["render_30s"]
    lines = ["| measure | value |", "|---|---|",
             f"| 30 s render via API, p50 | {lat['api_p50_s']:.2f} s |",
             f"| 30 s render in-process (generate_performances), p50 | {lat['in_process_p50_s']:.2f} s |",
             f"| API / in-process | {lat['api_over_in_process']:.2f}x |"]
    for run in r["short_renders"]["runs"]:
        lines.append(f"| {r['short_renders']['seconds_of_music']:g} s renders, {run['clients']} client(s) | "
                     f"{run['requests_per_s']:.1f} req/s (p50 {run['latency_p50_s'] * 1000:.0f} ms) |")
    for run in r["streams"]["runs"]:
        worst, start = run["lateness_max_s"], run["warmup_lateness_max_s"]
        lines.append(f"| {run['streams']} WebSocket streams | {run['note_ons']} note-ons, {run['late']} late "
                     f"(worst {_ms(worst)} vs due; first {WARMUP_S:g} s: worst {_ms(start)}) -> "
                     f"{'sustained' if run['sustained'] else 'NOT sustained'} |")
    lines.append(f"| concurrent real-time WebSocket streams sustained | {r['streams']['max_sustained']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a shorter run (development)")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints/music.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/service.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process baseline")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"no checkpoint at {args.checkpoint}: pass --checkpoint", file=sys.stderr)
        return 2
    budget = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    r: Json = {"machine": machine_info(), "quick": args.quick, "budget": asdict(budget),
               "checkpoint": shown(args.checkpoint), "torch_threads": args.threads}
    server = Server(args.checkpoint, args.threads)
    try:
        print("running render_30s ...", flush=True)
        r["render_30s"] = render_latency(server, args.checkpoint, budget)
        print("running short_renders ...", flush=True)
        r["short_renders"] = short_renders(server, budget)
        print("running streams ...", flush=True)
        r["streams"] = concurrent_streams(server, budget)
    finally:
        server.close()
    r["machine"]["loadavg_at_end"] = list(os.getloadavg())
    print(table(r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
