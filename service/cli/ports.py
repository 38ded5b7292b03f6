"""``perfrnn ports``: list MIDI input and output ports."""

from __future__ import annotations

import argparse


def add_output_timing_argument(p: argparse.ArgumentParser) -> None:
    """``--no-frame-timing``, for the commands that play into a port (``perfrnn play``, ``perfrnn jam``)."""
    p.add_argument("--no-frame-timing", dest="frame_timing", action="store_false",
                   help="on JACK, send each message through rtmidi when due (lands at the next cycle's start) instead "
                        "of writing it at its due frame")


def timed_output(args: argparse.Namespace) -> bool | None:
    """``open_output``'s ``timed`` for ``--no-frame-timing``: None (frame-accurate where possible) or False."""
    return None if args.frame_timing else False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", choices=["alsa", "jack", "coremidi", "winmm"], default=None,
                   help="MIDI API (default: ALSA/CoreMIDI where available, else JACK when a JACK server runs)")


def run(args: argparse.Namespace) -> int:
    from midi_io.ports import list_ports, resolve_api

    api = resolve_api(args.api)
    ports = list_ports(api)
    print(f"MIDI API: {api}")
    print("outputs (perfrnn plays into these):")
    for name in ports.outputs:
        print(f"  {name}")
    print("inputs (controllers perfrnn jam can listen to):")
    for name in ports.inputs:
        print(f"  {name}")
    return 0
