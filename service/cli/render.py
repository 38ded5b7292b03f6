"""``perfrnn render in.mid -o out.wav``: synthesize a MIDI file to audio (WAV, FLAC, Ogg Vorbis) with FluidSynth
and a General MIDI SoundFont. The audio flags here are shared with ``perfrnn generate``."""

from __future__ import annotations

import argparse
import sys
import time

from midi_io.audio import AUDIO_FORMATS, SOUNDFONT_ENV, AudioConfig


def add_audio_arguments(p: argparse.ArgumentParser) -> None:
    """--soundfont, --gain, --sample-rate (used when the output is audio)."""
    g = p.add_argument_group("audio output (.wav, .flac, .ogg; needs FluidSynth and a GM SoundFont)")
    g.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help=f"SoundFont to play with (default: ${SOUNDFONT_ENV}, then /usr/share/sounds/sf2/"
                        "default-GM.sf2, FluidR3_GM.sf2, ...)")
    g.add_argument("--gain", type=float, default=AudioConfig.gain, help="FluidSynth master gain (0..10)")
    g.add_argument("--sample-rate", type=int, default=AudioConfig.sample_rate, help="Hz (8000..96000)")


def add_force_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="write into an existing device/FIFO (e.g. /dev/null) or through a symbolic link instead of "
                        "refusing; a regular file is always replaced atomically")


def audio_config(args: argparse.Namespace) -> AudioConfig:
    return AudioConfig(soundfont=args.soundfont, gain=args.gain, sample_rate=args.sample_rate)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN.mid", help="a Standard MIDI File (any General MIDI instruments)")
    p.add_argument("-o", "--output", required=True, help=f"audio file: {', '.join('.' + f for f in AUDIO_FORMATS)}")
    add_force_argument(p)
    add_audio_arguments(p)


def run(args: argparse.Namespace) -> int:
    from midi_io.audio import find_program, find_soundfont, render_to_path
    from midi_io.files import read_notes
    from midi_io.output import check_output, output_format

    t0 = time.monotonic()
    _, special = check_output(args.output, force=args.force)  # usage errors first: nothing is read or written
    fmt = output_format(args.output, AUDIO_FORMATS, "audio", default="wav" if special else None)
    config = audio_config(args)
    find_program(config)
    find_soundfont(config.soundfont)
    notes = read_notes(args.input)  # a clear error for a file that is not MIDI (FluidSynth would render silence)
    render_to_path(args.input, args.output, config, force=args.force, fmt=fmt)
    end = max((n.end_s for n in notes), default=0.0)
    print(f"wrote {args.output}: {len(notes)} notes, {end:.1f} s of music, in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    return 0
