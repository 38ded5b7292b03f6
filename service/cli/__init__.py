"""``perfrnn``: one console script, one module per subcommand, each imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help); a module defines add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("service.cli.generate", "write .mid (or .wav/.flac/.ogg) files from the music checkpoint"),
    "render": ("service.cli.render", "synthesize a MIDI file to .wav/.flac/.ogg with FluidSynth"),
    "events": ("service.cli.events", "print a MIDI file's events as the model sees them (--ids: token ids)"),
    "data": ("service.cli.data", "build a music dataset from MIDI folders and/or music21's corpus"),
    "train": ("service.cli.train", "train the music, text or stroke model (resumes; works under torchrun)"),
    "export": ("service.cli.export", "make a small shippable checkpoint from a training one"),
    "eval": ("service.cli.evaluate", "held-out NLL of a checkpoint (--task music|text|strokes) and n-gram baselines"),
    "text": ("service.cli.text", "generate Shakespeare-like text"),
    "strokes": ("service.cli.strokes", "draw kanji-like pen strokes as SVG"),
    "ports": ("service.cli.ports", "list MIDI ports"),
    "play": ("service.cli.play", "play endlessly into a MIDI port until Ctrl-C"),
    "jam": ("service.cli.jam", "jam with a MIDI controller (call-and-response or continuous)"),
    "serve": ("service.cli.serve", "run the HTTP/WebSocket service and web page"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (so ``perfrnn generate`` never imports FastAPI)."""
    parser = argparse.ArgumentParser(prog="perfrnn", description="Performance RNN: real-time piano generation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == command:
            _add_arguments(module, p)
    return parser


def _add_arguments(module: str, parser: argparse.ArgumentParser) -> None:
    try:
        importlib.import_module(module).add_arguments(parser)
    except ImportError as exc:  # an optional part not installed: the command says so when run
        parser.set_defaults(_import_error=str(exc))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "_import_error", None):
        print(f"perfrnn {args.command}: unavailable: {args._import_error}", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the user sees one clear line, not a traceback (-v shows it)
        from midi_io.errors import MidiIOError
        from midi_io.output import OutputRefused
        from performance_rnn.errors import PerformanceRNNError

        if isinstance(exc, OutputRefused):  # a usage error, like argparse's: nothing was written
            print(f"perfrnn {args.command}: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, PerformanceRNNError | MidiIOError | ValueError | OSError) and not args.verbose:
            print(f"perfrnn {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
