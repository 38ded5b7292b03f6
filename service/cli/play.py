"""``perfrnn play``: play endlessly into a MIDI port (virtual by default) until Ctrl-C; every note-off is sent."""

from __future__ import annotations

import argparse
import sys

from performance_rnn.codecs.controls import DENSITY_HELP, KEY_HELP
from service.cli.channels import CHANNEL_HELP, midi_channel
from service.cli.generate import DEFAULT_CHECKPOINT, add_weights_argument
from service.cli.ports import add_output_timing_argument, timed_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port-name", default="Performance RNN",
                   help="virtual port to create, or an existing port to connect to (see --connect)")
    p.add_argument("--connect", action="store_true", help="connect to an existing port instead of creating one")
    p.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], default=None)
    add_output_timing_argument(p)
    p.add_argument("--channel", type=int, default=1, metavar="1..16", help=CHANNEL_HELP)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--density", type=float, default=None, help=DENSITY_HELP)
    p.add_argument("--key", default=None, help=KEY_HELP)
    p.add_argument("--primer", metavar="FILE.mid", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this much music (default: never)")
    p.add_argument("--lookahead", type=float, default=0.2, help="seconds generated ahead of playback")
    p.add_argument("--late-ms", type=float, default=100.0, help="drop events later than this")
    add_weights_argument(p)
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import torch

    from midi_io.player import Player, PlayerConfig, run_until_signal
    from midi_io.ports import open_output
    from performance_rnn.config import SamplingConfig
    from performance_rnn.tasks.music.generate import load_music, music_engine, stream_spec
    from service.cli.primer import primer_from_file
    from service.playback import LivePlayback, settle_for_realtime

    channel = midi_channel(args.channel)
    if not 0.01 <= args.lookahead <= 5.0:
        raise ValueError("--lookahead must be in range 0.01..5 seconds")
    torch.set_num_threads(1)
    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p)
    primer = primer_from_file(args.primer) if args.primer else None
    mm = load_music(args.checkpoint, args.device, weights=args.weights)
    port = open_output(args.port_name, virtual=not args.connect, api=args.api,
                       timed=timed_output(args))
    engine = music_engine(mm).start()
    settle_for_realtime()
    player = Player(port, PlayerConfig(channel=channel, late_threshold_s=args.late_ms / 1000))
    try:
        stream = engine.open(stream_spec(mm, seed=args.seed, sampling=sampling, primer=primer,
                                         density_nps=args.density, key=args.key, lookahead_s=args.lookahead,
                                         max_seconds=args.seconds))
        live = LivePlayback(stream, player, mm.codec, channel=channel).start()
        print(f"playing into MIDI port {args.port_name!r}; Ctrl-C stops", file=sys.stderr)
        sig = run_until_signal(live.stop, done=live.done)
        if sig is None:
            player.wait_idle(timeout_s=10)
    finally:
        player.stop()
        engine.stop()
        port.close()
    s = player.stats()
    print(f"sent {s.sent} messages, {s.late} late, {s.dropped} dropped", file=sys.stderr)
    return 0
