"""Build a music dataset: read sources in parallel worker processes (with a per-file time limit), split by
piece, and write note shards per split plus a manifest with the summary and the skipped files.

Layout of ``out_dir``: ``cache/`` (one parsed file each, so a rerun skips finished files), ``train.npz``,
``validation.npz``, ``test.npz`` (notes of all pieces, concatenated, with piece offsets), ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from midi_io.notes import Note
from performance_rnn.codecs.performance import PerformanceCodecConfig, notes_to_events
from performance_rnn.errors import DataError
from performance_rnn.tasks.music.sources import Source, find_sources, read_source, split_of

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
MIN_NOTES = 8  # pieces with fewer notes carry nothing to learn


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("took longer than the per-file time limit")


def _parse_one(source: Source, midi_reader: Callable[[str], list[Note]], cache_dir: str,
               timeout_s: int) -> tuple[Source, str | None, int]:
    """Worker: parse one file into the cache. -> (source, error or None, pieces)."""
    cache = Path(cache_dir) / (hashlib.sha1(source.path.encode()).hexdigest() + ".npz")
    if cache.exists():
        with np.load(cache) as z:
            return source, None, len(json.loads(str(z["names"])))
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        pieces = list(read_source(source, midi_reader))
    except Exception as exc:  # noqa: BLE001 - any reader failure skips the file with its reason; the build goes on
        return source, f"{type(exc).__name__}: {exc}"[:300], 0
    finally:
        signal.alarm(0)
    names, arrays = [], []
    for name, notes in pieces:
        if len(notes) >= MIN_NOTES:
            names.append(name)
            arrays.append(np.array([(n.pitch, n.velocity, n.start_s, n.end_s) for n in notes], dtype=np.float64))
    if not names:
        return source, f"fewer than {MIN_NOTES} notes", 0
    lengths = np.array([len(a) for a in arrays])
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, notes=np.concatenate(arrays), lengths=lengths, names=json.dumps(names))
    os.replace(tmp, cache)
    return source, None, len(names)


def build_dataset(
    out_dir: str | os.PathLike[str],
    *,
    folders: list[str],
    music21_corpus: bool,
    midi_reader: Callable[[str], list[Note]],
    workers: int = 2,
    timeout_s: int = 60,
    limit: int = 0,
    exclude: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
    group_by_folder: bool = False,
) -> dict[str, Any]:
    """Build the dataset into ``out_dir`` and return its summary (also written to manifest.json).

    ``group_by_folder`` splits by each file's folder instead of by file, so that several performances of one
    piece (ASAP's layout: Composer/Work/Piece/PERFORMER.mid) land in one split together."""
    out = Path(out_dir)
    cache_dir = out / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    sources = [s for s in find_sources(folders, music21_corpus) if not any(x in s.path for x in exclude)]
    if limit:
        sources = sources[:limit]
    if not sources:
        corpus = "" if music21_corpus else " and no music21 corpus"
        raise DataError(f"no MIDI files found under {folders}{corpus}")
    work = partial(_parse_one, midi_reader=midi_reader, cache_dir=str(cache_dir), timeout_s=timeout_s)
    skipped: list[dict[str, str]] = []
    done = 0
    with mp.get_context("fork").Pool(max(1, workers), maxtasksperchild=50) as pool:
        for source, error, _ in pool.imap_unordered(work, sources, chunksize=1):
            done += 1
            if error:
                skipped.append({"path": source.path, "reason": error})
            if progress:
                progress(done, len(sources))
    split_notes: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    split_names: dict[str, list[str]] = {s: [] for s in SPLITS}
    for cache in sorted(cache_dir.glob("*.npz")):
        with np.load(cache) as z:
            names = json.loads(str(z["names"]))
            chunks = np.split(z["notes"], np.cumsum(z["lengths"])[:-1])
        for name, arr in zip(names, chunks, strict=True):
            s = split_of(group_of(name, folders) if group_by_folder else name)
            split_names[s].append(name)
            split_notes[s].append(arr)
    codec = PerformanceCodecConfig()
    summary: dict[str, Any] = {"codec": asdict(codec), "splits": {}, "skipped": len(skipped),
                               "files": len(sources), "split_by": "folder" if group_by_folder else "file"}
    for s in SPLITS:
        order = np.argsort(split_names[s]) if split_names[s] else np.array([], dtype=int)
        names = [split_names[s][i] for i in order]
        arrays = [split_notes[s][i] for i in order]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        notes = np.concatenate(arrays) if arrays else np.zeros((0, 4))
        np.savez(out / f"{s}.tmp.npz", notes=notes, lengths=lengths, names=json.dumps(names))
        os.replace(out / f"{s}.tmp.npz", out / f"{s}.npz")
        events = sum(len(notes_to_events(_to_notes(a), codec)) for a in arrays)
        hours = sum(float(a[:, 3].max()) for a in arrays if len(a)) / 3600
        summary["splits"][s] = {"pieces": len(names), "notes": int(lengths.sum()), "events": events,
                                "hours": round(hours, 2)}
    if not summary["splits"]["train"]["pieces"]:
        raise DataError("no readable pieces: every file was skipped (see the reasons in manifest.json)")
    manifest = {**summary, "skipped_files": skipped}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return summary


def group_of(path: str, roots: list[str]) -> str:
    """A file's folder relative to the dataset root it was found under (the piece, in ASAP's layout)."""
    p = Path(path)
    for root in roots:
        try:
            return str(p.parent.relative_to(Path(root)))
        except ValueError:
            continue
    return str(p.parent)


def _to_notes(arr: np.ndarray) -> list[Note]:
    return [Note(int(p), int(v), float(s), float(e)) for p, v, s, e in arr]


def load_split(data_dir: str | os.PathLike[str], split: str) -> tuple[list[str], list[np.ndarray]]:
    """-> (piece names, one (N, 4) array of pitch, velocity, start_s, end_s per piece)."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.exists():
        raise DataError(f"{path}: no such split; build the dataset first (perfrnn data ...)")
    with np.load(path) as z:
        names = json.loads(str(z["names"]))
        lengths = z["lengths"]
        chunks = np.split(z["notes"], np.cumsum(lengths)[:-1]) if len(lengths) else []
    return names, list(chunks)
