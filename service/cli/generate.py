"""``perfrnn generate``: write .mid files from the shipped music checkpoint, or audio (.wav, .flac, .ogg) through
FluidSynth; the format is chosen by the output's extension."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from performance_rnn.codecs.controls import DENSITY_HELP, KEY_HELP
from performance_rnn.tasks.music.defaults import DEFAULTS
from service.cli.primer import primer_from_file
from service.cli.render import add_audio_arguments, add_force_argument, audio_config

DEFAULT_CHECKPOINT = DEFAULTS.checkpoint  # the shipped music.pt, found from the package (also play, jam)


def add_weights_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="auto", choices=["auto", "float32", "bfloat16", "int8"],
                   help="how the inference step stores the model's weights: auto = int8 on a CPU with int8 kernels "
                        "when it keeps the model within tolerance (see the model card), else float32")
MIDI_FORMATS = ("mid", "midi")
OUTPUT_FORMATS = (*MIDI_FORMATS, "wav", "flac", "ogg")  # by extension; anything else is refused (exit status 2)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out.mid",
                   help="output file, its format by extension: .mid, .wav, .flac or .ogg (audio through FluidSynth); "
                        "with --num-outputs N: out-1.mid ...")
    add_force_argument(p)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of music to generate (after the primer)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--beam-size", type=int, default=0,
                   help="Magenta-style beam search over sampled branches instead of plain sampling (0 = sample)")
    p.add_argument("--branch-factor", type=int, default=2, help="beam search: sampled branches per beam")
    p.add_argument("--steps-per-iteration", type=int, default=1, help="beam search: events sampled per branch")
    p.add_argument("--no-keyboard-mask", action="store_true",
                   help="research: let the model emit impossible events (note-off of a silent key, re-strike of a "
                        "held key, zero-length notes) instead of masking them")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    prim = p.add_mutually_exclusive_group()
    prim.add_argument("--primer", metavar="FILE.mid", help="continue this MIDI file")
    prim.add_argument("--primer-pitches", metavar="60,64,67", help="prime with one chord held for 0.5 s")
    p.add_argument("--include-primer", action="store_true", help="put the primer at the start of the output")
    p.add_argument("--density", type=float, default=None, help=DENSITY_HELP)
    p.add_argument("--key", default=None, help=KEY_HELP)
    p.add_argument("--num-outputs", type=int, default=1)
    add_weights_argument(p)
    p.add_argument("--device", default="cpu")
    add_audio_arguments(p)


def _pitches(text: str) -> list[int]:
    try:
        pitches = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--primer-pitches must be comma-separated MIDI pitches, got {text!r}") from None
    if not pitches or any(not 0 <= x <= 127 for x in pitches):
        raise ValueError("--primer-pitches must be MIDI pitches in range 0..127")
    return pitches


def output_paths(output: str, n: int) -> list[Path]:
    base = Path(output)
    if n == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i + 1}{base.suffix or '.mid'}") for i in range(n)]


def run(args: argparse.Namespace) -> int:
    import torch

    from midi_io.audio import find_program, find_soundfont, synthesize_notes_file
    from midi_io.files import notes_to_midi_bytes
    from midi_io.output import check_output, output_format, write_bytes
    from performance_rnn.config import SamplingConfig
    from performance_rnn.tasks.music.generate import beam_performance, chord_primer, generate_performances, load_music

    t0 = time.monotonic()
    if not 1 <= args.num_outputs <= 64:
        raise ValueError("--num-outputs must be in range 1..64")
    # the output is checked before any work: a refused name, extension or missing synthesizer writes nothing
    paths = output_paths(args.output, args.num_outputs)
    special = [check_output(path, force=args.force)[1] for path in paths]
    fmt = output_format(args.output, OUTPUT_FORMATS, default="mid" if special[0] else None)  # -o /dev/null --force
    audio = None
    if fmt not in MIDI_FORMATS:
        audio = audio_config(args)
        find_program(audio)
        find_soundfont(audio.soundfont)
    sampling = SamplingConfig(args.temperature, args.top_k, args.top_p)
    primer = None
    primer_s = 0.0
    if args.primer:
        primer = primer_from_file(args.primer)
    elif args.primer_pitches:
        primer = chord_primer(_pitches(args.primer_pitches))
    if primer:
        primer_s = max(n.end_s for n in primer) - min(n.start_s for n in primer)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    torch.set_num_threads(1)  # one stream step is latency-bound: more threads only add synchronisation
    mm = load_music(args.checkpoint, args.device, weights=args.weights)
    if args.beam_size:
        performances = [beam_performance(mm, seconds=args.seconds, beam_size=args.beam_size, seed=args.seed + i,
                                         sampling=sampling, branch_factor=args.branch_factor,
                                         steps_per_iteration=args.steps_per_iteration, primer=primer,
                                         density_nps=args.density, key=args.key, include_primer=args.include_primer,
                                         keyboard_mask=not args.no_keyboard_mask)
                        for i in range(args.num_outputs)]
    else:
        seeds = [args.seed + i for i in range(args.num_outputs)]
        performances = generate_performances(mm, seconds=args.seconds, seeds=seeds, sampling=sampling, primer=primer,
                                             density_nps=args.density, key=args.key,
                                             include_primer=args.include_primer,
                                             keyboard_mask=not args.no_keyboard_mask)
    for path, notes in zip(paths, performances, strict=True):
        end = max([n.end_s for n in notes] + [args.seconds + (primer_s if args.include_primer else 0.0)])
        midi = notes_to_midi_bytes(notes, end_s=end)
        if audio is None:
            write_bytes(path, midi, force=args.force)
        else:
            synthesize_notes_file(midi, path, audio, force=args.force, fmt=fmt)
        print(f"wrote {path}: {len(notes)} notes, {end:.1f} s", file=sys.stderr)
    print(f"done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0
