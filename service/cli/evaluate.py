"""``perfrnn eval``: held-out NLL per event of a music checkpoint next to unigram and n-gram baselines.

The n-gram order is chosen on the validation split; every figure is on the same test windows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "music.pt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--data", default="data/music21", help="dataset folder built by perfrnn data")
    p.add_argument("--split", default="test", choices=["validation", "test"])
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--max-order", type=int, default=6, help="largest n-gram order tried on validation")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import torch

    from performance_rnn.baselines import NGram
    from performance_rnn.codecs.performance import vocab_size
    from performance_rnn.data.build import load_split
    from performance_rnn.data.music import MusicData, MusicDataConfig, encode_piece
    from performance_rnn.music import load_music
    from performance_rnn.train import TrainConfig, batch_loss

    t0 = time.monotonic()
    mm = load_music(args.checkpoint, args.device)
    data = MusicData(args.data, MusicDataConfig(conditioned=mm.conditioned), mm.codec)
    cfg = TrainConfig(batch_size=32, window=args.window, device=args.device)
    results: dict[str, object] = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split}

    def model_nll(split: str, conditioned: bool) -> float:
        total, n = 0.0, 0
        with torch.no_grad():
            for batch in data.eval_batches(split, cfg.batch_size, cfg.window, conditioned=conditioned):
                nll, k = batch_loss(mm.model, mm.head, batch, torch.device(args.device))
                total, n = total + float(nll), n + int(k)
        return total / max(1, n)

    results["model_nll"] = model_nll(args.split, False)
    if mm.conditioned:
        results["model_nll_with_controls"] = model_nll(args.split, True)
    windows = {s: [w for w, _ in data.eval_windows(s, args.window)] for s in ("validation", args.split)}
    results["tokens"] = sum(len(w) - 1 for w in windows[args.split])
    print("fitting n-grams on the training split ...", file=sys.stderr)
    _, pieces = load_split(args.data, "train")
    train_seqs = [encode_piece(p, mm.codec)[0] for p in pieces]
    v = vocab_size(mm.codec)
    val_scores = {}
    for order in range(1, args.max_order + 1):
        lm = NGram(order, v).fit(train_seqs)
        val_scores[order] = lm.nll(windows["validation"])
        if order == 1:
            results["unigram_nll"] = lm.nll(windows[args.split])
    best = min(val_scores, key=val_scores.__getitem__)
    results["ngram_order"] = best
    results["ngram_validation_nll_by_order"] = val_scores
    results["ngram_nll"] = NGram(best, v).fit(train_seqs).nll(windows[args.split])
    results["wall_s"] = round(time.monotonic() - t0, 1)
    print(f"{args.split} NLL per event (nats), {results['tokens']} events:")
    print(f"  LSTM, controls disabled   {results['model_nll']:.4f}")
    if mm.conditioned:
        print(f"  LSTM, true controls       {results['model_nll_with_controls']:.4f}")
    print(f"  {best}-gram (best on val.)    {results['ngram_nll']:.4f}")
    print(f"  unigram                   {results['unigram_nll']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0
