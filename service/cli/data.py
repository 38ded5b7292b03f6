"""``perfrnn data``: build a music dataset (parallel workers, progress bar, summary)."""

from __future__ import annotations

import argparse
import json

from performance_rnn.tasks.music.defaults import DEFAULTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="*", help="folders of .mid/.midi files (searched recursively), e.g. MAESTRO")
    p.add_argument("--music21", action="store_true", help="also use the score corpus bundled with music21")
    p.add_argument("-o", "--out", default=str(DEFAULTS.data),
                   help=f"dataset folder (default: {DEFAULTS.data}, where perfrnn train and eval look)")
    p.add_argument("--workers", type=int, default=2, help="parallel reader processes")
    p.add_argument("--timeout", type=int, default=60, help="seconds allowed per file before it is skipped")
    p.add_argument("--exclude", default="", help="comma-separated path substrings to leave out, e.g. essenFolksong")
    p.add_argument("--group-by-folder", action="store_true",
                   help="split by each file's folder, not by file (several performances of one piece per folder, "
                        "as ASAP); never lets one piece leak into the held-out splits")
    p.add_argument("--limit", type=int, default=0, help="read only the first N files (0 = all)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from midi_io.files import read_notes
    from performance_rnn.tasks.music.build import build_dataset

    if not args.folders and not args.music21:
        raise ValueError("give at least one folder of MIDI files or --music21")
    bar = tqdm(total=0, unit="file", desc="reading")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    summary = build_dataset(args.out, folders=args.folders, music21_corpus=args.music21, midi_reader=read_notes,
                            workers=args.workers, timeout_s=args.timeout, limit=args.limit,
                            exclude=tuple(x for x in args.exclude.split(",") if x), progress=progress,
                            group_by_folder=args.group_by_folder)
    bar.close()
    print(f"dataset in {args.out}: {summary['files']} files, {summary['skipped']} skipped "
          f"(reasons in {args.out}/manifest.json)")
    for split, s in summary["splits"].items():
        print(f"  {split:<10} {s['pieces']:>6} pieces {s['events']:>10} events {s['hours']:>8.2f} h")
    print(json.dumps(summary))
    return 0
