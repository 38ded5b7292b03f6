"""``perfrnn events FILE``: a MIDI file's Performance events exactly as the music model sees them.

Sustain pedal applied (note_seq's rules), drum notes dropped, all other instruments merged, times quantized to
10 ms steps from the start of the file, no trimming. One event per line (``TIME_SHIFT 12``), or ``--ids``: the
token ids as one JSON list (the same ids as note_seq's ``PerformanceOneHotEncoding``).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a Standard MIDI File (.mid / .midi)")
    p.add_argument("--ids", action="store_true", help="print the token ids as one JSON list")
    p.add_argument("--no-sustain", action="store_true", help="do not apply the sustain pedal")


def run(args: argparse.Namespace) -> int:
    from midi_io.files import read_notes
    from performance_rnn.codecs.performance import PerformanceCodecConfig, encode, notes_to_events

    codec = PerformanceCodecConfig()
    notes = [n for n in read_notes(args.file, apply_sustain=not args.no_sustain) if not n.is_drum]
    events = notes_to_events(notes, codec)
    if args.ids:
        print(json.dumps(encode(events, codec)))
    else:
        print("\n".join(f"{e.type.name} {e.value}" for e in events))
    return 0
