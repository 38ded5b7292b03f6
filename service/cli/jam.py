"""``perfrnn jam``: play with a MIDI controller.

CC mapping (default ``21=temperature,22=density,23=key,24=response_length,25=conditioning,26=panic,
27=end_phrase``; change it with ``--cc-map``): temperature 0.1..2.0 linear; density 1..64 notes/s
(exponential; see ``perfrnn generate --help`` for how far a model follows); key = pitch class (major scale);
response length 0.25 s per step (0 = as long as the phrase); conditioning on at >= 64; panic and end-phrase
act on press.
"""

from __future__ import annotations

import argparse
import sys
import threading

from service.cli.channels import CHANNEL_HELP, midi_channel
from service.cli.generate import DEFAULT_CHECKPOINT, add_weights_argument
from service.cli.ports import add_output_timing_argument, timed_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="input", required=True,
                   help="the controller's port (name or unique part of it); with --in-virtual, a port to create")
    p.add_argument("--in-virtual", action="store_true", help="create a virtual input that others connect to")
    p.add_argument("--out", default="Performance RNN", help="output port: created unless --connect")
    p.add_argument("--connect", action="store_true", help="connect the output to an existing port")
    p.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], default=None)
    add_output_timing_argument(p)
    p.add_argument("--mode", choices=["call", "continuous"], default="call")
    p.add_argument("--response-seconds", type=float, default=0.0, help="0 = as long as the phrase")
    p.add_argument("--silence", type=float, default=1.0, help="seconds of silence that end a phrase")
    p.add_argument("--passthrough", action="store_true",
                   help="echo the controller's notes to the output, on --passthrough-channel (released on stop)")
    p.add_argument("--passthrough-channel", type=int, default=None, metavar="1..16",
                   help="MIDI channel of the echoed notes (default: the one after --channel); never the model's")
    p.add_argument("--cc-map", default=None, help="e.g. '21=temperature,22=density,64=panic'")
    p.add_argument("--channel", type=int, default=1, metavar="1..16", help=f"the model's {CHANNEL_HELP}")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--seed", type=int, default=0)
    add_weights_argument(p)
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import torch

    from midi_io.capture import CaptureConfig, CCMap, PhraseCapture
    from midi_io.echo import Echo
    from midi_io.player import run_until_signal
    from midi_io.ports import open_input, open_output
    from performance_rnn.config import SamplingConfig
    from performance_rnn.tasks.music.generate import load_music, music_engine
    from service.jam import Jam, JamConfig
    from service.playback import settle_for_realtime

    channel = midi_channel(args.channel, "--channel")
    echo_channel = (channel + 1) % 16 if args.passthrough_channel is None else midi_channel(
        args.passthrough_channel, "--passthrough-channel")
    if args.passthrough and echo_channel == channel:
        raise ValueError("--passthrough-channel must differ from --channel: the model's note-offs would cut yours")
    torch.set_num_threads(1)
    cc_map = CCMap.parse(args.cc_map) if args.cc_map else CCMap()
    mm = load_music(args.checkpoint, args.device, weights=args.weights)
    out = open_output(args.out, virtual=not args.connect, api=args.api,
                       timed=timed_output(args))
    echo = Echo(out, echo_channel) if args.passthrough else None
    capture = PhraseCapture(CaptureConfig(silence_s=args.silence, cc_map=cc_map), passthrough=echo)
    engine = music_engine(mm).start()
    settle_for_realtime()
    jam = Jam(mm, engine, capture, out, JamConfig(args.mode, args.response_seconds, channel=channel,
                                                  seed=args.seed), echo=echo)
    jam.sampling = SamplingConfig(args.temperature)
    inp = open_input(args.input, jam.feed, virtual=args.in_virtual, api=args.api)
    stop = threading.Event()
    worker = threading.Thread(target=jam.run, args=(stop,), daemon=True)
    worker.start()
    print(f"jamming ({args.mode}): listening on {args.input!r}, playing into {args.out!r}; CC map {cc_map}; "
          "Ctrl-C stops", file=sys.stderr)
    try:
        run_until_signal(stop.set)
        worker.join(timeout=5)
    finally:
        inp.close()
        if echo is not None:
            echo.release()  # (the jam released them too, unless it never ran)
        engine.stop()
        out.close()
    print(f"answered {jam.responses} phrases", file=sys.stderr)
    return 0

