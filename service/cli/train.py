"""``perfrnn train``: train a model (music by default) with resume, a progress bar, and torchrun support.

Two-process CPU training:  torchrun --standalone --nproc_per_node 2 -m service.cli train ...
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from performance_rnn.train import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=["music", "text", "strokes"], default="music")
    p.add_argument("--data", default="data/music", help="dataset folder (music: built by perfrnn data)")
    p.add_argument("--run-dir", default="runs/music", help="checkpoints and logs; an existing run resumes")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="music: start from these weights (e.g. the shipped checkpoints/music.pt, whose size wins "
                        "over --layers/--hidden) when the run directory holds no checkpoint yet")
    p.add_argument("--embed", type=int, default=0, help="token embedding width (0: one-hot input, as Magenta)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--no-controls", action="store_true", help="music: train without density/key conditioning")
    p.add_argument("--no-augment", action="store_true", help="music: no transposition / time stretch")
    p.add_argument("--no-stretch", action="store_true", help="music: transpose but do not time-stretch")
    for f in fields(TrainConfig):
        if f.name in ("device",):
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f"(default {f.default})")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import torch
    from tqdm import tqdm

    from performance_rnn.codecs.controls import CONTROL_DIM
    from performance_rnn.codecs.performance import PerformanceCodecConfig, vocab_size
    from performance_rnn.config import ModelConfig
    from performance_rnn.heads import CategoricalHead
    from performance_rnn.model import RecurrentModel
    from performance_rnn.tasks.music.data import MusicData, MusicDataConfig
    from performance_rnn.train import train

    cfg = _train_config(args)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    if args.task != "music":
        from performance_rnn import siblings_train  # written for the text and stroke models

        return siblings_train.run(args, cfg)
    codec = PerformanceCodecConfig()
    data_cfg = MusicDataConfig(conditioned=not args.no_controls, augment=not args.no_augment,
                               stretch=not args.no_stretch)
    data = MusicData(args.data, data_cfg, codec, workers=2)
    v = vocab_size(codec)
    model_cfg = ModelConfig(input_size=v, embed_size=args.embed, hidden_size=args.hidden, num_layers=args.layers,
                            control_size=CONTROL_DIM if data_cfg.conditioned else 0, output_size=v,
                            dropout=args.dropout)
    last = Path(args.run_dir) / "last.pt"
    source = last if last.exists() else Path(args.init_from) if args.init_from else None
    init = None
    if source is not None:  # a run continues at its own size, whatever the flags say
        from performance_rnn.checkpoint import build_model, load_raw

        ckpt = load_raw(source)
        if ckpt["kind"] != "music":
            raise ValueError(f"{source}: a {ckpt['kind']!r} checkpoint, not a music one")
        model_cfg = ModelConfig(**{**ckpt["model_config"], "dropout": args.dropout})
        if model_cfg.control_size != (CONTROL_DIM if data_cfg.conditioned else 0):
            raise ValueError(f"{source}: its conditioning does not match --no-controls")
        init = build_model(ckpt) if source != last else None
    model = RecurrentModel(model_cfg)
    if init is not None:
        model.load_state_dict(init.state_dict())
        print(f"starting from the weights of {source}")
    bar = tqdm(total=cfg.steps, unit="step", desc="train")

    def progress(step: int, total: int, row: dict[str, float]) -> None:
        bar.update(step - bar.n)
        if row:
            bar.set_postfix(val=f"{row['val_nll']:.3f}", train=f"{row['train_nll']:.3f}", tok_s=row["tok_per_s"])

    manifest = Path(args.data) / "manifest.json"
    extra = {"data": {"dir": str(args.data), "config": asdict(data_cfg),
                      "summary": json.loads(manifest.read_text()).get("splits") if manifest.exists() else None}}
    state = train(data, model, CategoricalHead(v), cfg, args.run_dir, kind="music",
                  codec={"name": "performance", **asdict(codec)}, extra=extra, progress=progress)
    bar.close()
    print(json.dumps({"step": state["step"], "best_val_nll": state["best_val"], "wall_s": round(state["wall_s"], 1)}))
    return 0
