"""KanjiVG for the pen-stroke model: SVG stroke paths -> polylines -> RDP -> stroke-3, split by code point.

KanjiVG (c) Ulrich Apel, CC BY-SA 3.0, https://kanjivg.tagaini.net. The ``kanjivg`` wheel installs a
top-level folder ``kanji/`` of ``XXXXX[-Variant].svg`` files (no ``__init__.py``), found here with
``importlib.util.find_spec("kanji")``. Each ``<path d=...>`` is one stroke, in stroke order.

Pipeline (``load_drawings``): every cubic sampled at 8 points, RDP with epsilon = 1.0 in KanjiVG's 109-unit
space (hardmaru's kanji.rdp100 setting), stroke-3 in those units; drawings longer than ``MAX_POINTS`` are
dropped. Split by character code point (a character's style variants stay with it): a code point goes to
test when ``crc32(hex code) % 100 < 5``, to validation when ``< 10``, else to train. Offsets are divided by
one scale factor, the std of all training dx, dy (stored in the checkpoint).
"""

from __future__ import annotations

import importlib.util
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from performance_rnn.batches import Batch
from performance_rnn.codecs.strokes import (
    END,
    S0,
    lines_to_stroke3,
    parse_svg_path,
    rdp,
    scale,
    scale_factor,
    stroke3_to_stroke5,
)
from performance_rnn.config import ModelConfig
from performance_rnn.errors import DataError
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.tasks import ModelSize, TrainSetup

RDP_EPSILON = 1.0
SAMPLES_PER_CURVE = 8
MAX_POINTS = 200  # sketch-rnn advises < 250; KanjiVG at epsilon 1.0 stays far below
CANVAS = 109.0  # KanjiVG's viewBox side
_PATH_D = re.compile(r'<path\b[^>]*?\sd="([^"]+)"', re.DOTALL)


def kanji_root() -> Path:
    spec = importlib.util.find_spec("kanji")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'kanjivg' package is not installed (its data is the top-level folder 'kanji/')")
    for loc in spec.submodule_search_locations:
        if any(Path(loc).glob("*.svg")):
            return Path(loc)
    raise DataError("the 'kanji' folder holds no .svg files (a module named 'kanji' may shadow kanjivg)")


def svg_to_stroke3(svg: str, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """A KanjiVG file's text -> stroke-3 (N, 3) in its 109-unit space."""
    lines = []
    for d in _PATH_D.findall(svg):
        for line in parse_svg_path(d, SAMPLES_PER_CURVE):
            lines.append(rdp(line, epsilon))
    return lines_to_stroke3(lines)


def code_point(name: str) -> int:
    """'04e00-Kaisho.svg' -> 0x4e00."""
    return int(name.split(".")[0].split("-")[0], 16)


def split_of(cp: int) -> str:
    bucket = zlib.crc32(f"{cp:05x}".encode()) % 100
    return "test" if bucket < 5 else "validation" if bucket < 10 else "train"


def load_drawings(root: Path | None = None, limit: int = 0) -> dict[str, tuple[list[str], list[np.ndarray]]]:
    """split -> (file names, stroke-3 drawings in KanjiVG units), files sorted by name."""
    root = root or kanji_root()
    files = sorted(root.glob("*.svg"))[: limit or None]
    out: dict[str, tuple[list[str], list[np.ndarray]]] = {s: ([], []) for s in ("train", "validation", "test")}
    for f in files:
        s3 = svg_to_stroke3(f.read_text(encoding="utf-8"))
        if not 0 < len(s3) <= MAX_POINTS:
            continue
        names, drawings = out[split_of(code_point(f.name))]
        names.append(f.name)
        drawings.append(s3)
    if not out["train"][1]:
        raise DataError(f"{root}: no usable KanjiVG drawings")
    return out


def to_sequence(s3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A scaled stroke-3 drawing -> (inputs, targets) stroke-5, each (N + 1, 5): S0 + rows, rows + END."""
    rows = stroke3_to_stroke5(s3)
    return np.vstack([S0, rows]), np.vstack([rows, END])


@dataclass
class StrokeData:
    """``TrainData`` over scaled stroke-3 drawings. Training batches are augmented (x and y stretched
    independently by up to ``random_scale``, as sketch-rnn); evaluation batches are not."""

    factor: float  # the normalising scale factor (KanjiVG units per model unit)
    splits: dict[str, list[np.ndarray]]  # split -> scaled stroke-3 drawings
    names: dict[str, list[str]] = field(default_factory=dict)
    random_scale: float = 0.15

    def _batch(self, drawings: list[np.ndarray], window: int) -> Batch:
        pairs = [to_sequence(d[:window - 1]) for d in drawings]  # at most window steps with the end step
        t = max(len(x) for x, _ in pairs)
        inputs = np.tile(END, (len(pairs), t, 1))
        targets = np.tile(END, (len(pairs), t, 1))
        mask = np.zeros((len(pairs), t), dtype=bool)
        for b, (x, y) in enumerate(pairs):
            inputs[b, :len(x)], targets[b, :len(y)], mask[b, :len(y)] = x, y, True
        return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), None, torch.from_numpy(mask))

    def train_batch(self, batch_size: int, window: int, rng: np.random.Generator) -> Batch:
        train = self.splits["train"]
        picks = rng.integers(0, len(train), size=batch_size)
        stretch = rng.uniform(1 - self.random_scale, 1 + self.random_scale, size=(batch_size, 2))
        drawings = []
        for i, (sx, sy) in zip(picks, stretch, strict=True):
            d = train[i].copy()
            d[:, 0] *= sx
            d[:, 1] *= sy
            drawings.append(d)
        return self._batch(drawings, window)

    def eval_batches(self, split: str, batch_size: int, window: int) -> Iterator[Batch]:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; have {sorted(self.splits)}")
        drawings = self.splits[split]
        for b in range(0, len(drawings), batch_size):
            yield self._batch(drawings[b:b + batch_size], window)


def build(root: Path | None = None, limit: int = 0, cache: str | Path | None = None) -> StrokeData:
    """Load, split and scale KanjiVG (``limit`` files only, for tests). ``cache``: an .npz written on the
    first call and read after (it is KanjiVG-derived data: CC BY-SA 3.0)."""
    if cache is not None and Path(cache).is_file():
        z = np.load(cache, allow_pickle=False)
        raw = {s: (list(z[f"{s}_names"]),
                   np.split(z[f"{s}_points"], z[f"{s}_cuts"]) if len(z[f"{s}_names"]) else [])
               for s in ("train", "validation", "test")}
    else:
        raw = load_drawings(root, limit)
        if cache is not None:
            arrays = {}
            for s, (names, drawings) in raw.items():
                arrays[f"{s}_names"] = np.asarray(names)
                arrays[f"{s}_points"] = np.concatenate(drawings) if drawings else np.zeros((0, 3), np.float32)
                arrays[f"{s}_cuts"] = np.cumsum([len(d) for d in drawings])[:-1]
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cache, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    factor = scale_factor(raw["train"][1])
    return StrokeData(factor, {s: [scale(d, factor) for d in ds] for s, (_, ds) in raw.items()},
                      {s: list(ns) for s, (ns, _) in raw.items()})


def codec_dict(factor: float, num_mixtures: int) -> dict[str, object]:
    """What the checkpoint keeps to turn model units back into drawings (primitives only)."""
    return {"name": "strokes", "scale_factor": float(factor), "num_mixtures": int(num_mixtures),
            "sigma_rule": "sqrt", "rdp_epsilon": RDP_EPSILON, "canvas": CANVAS}


def training_setup(data: Path | None, size: ModelSize, options: Mapping[str, Any]) -> TrainSetup:
    """KanjiVG through the cache file ``data`` (written on first use; None: no cache), a ``size`` LSTM over
    stroke-5 vectors and its ``size.mixtures``-Gaussian head."""
    strokes = build(cache=data)
    head = StrokeMixtureHead(size.mixtures)
    config = ModelConfig(input_kind="vectors", input_size=5, hidden_size=size.hidden, num_layers=size.layers,
                         output_size=head.num_params, dropout=size.dropout)
    split = {"rule": "crc32(f'{code_point:05x}') % 100: <5 test, <10 validation",
             "sizes": {s: len(v) for s, v in strokes.splits.items()}}
    return TrainSetup(strokes, config, head, codec_dict(strokes.factor, size.mixtures), {"split": split})
