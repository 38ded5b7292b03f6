"""The one training loop (music, text and strokes): Adam, gradient clipping, periodic validation, atomic
checkpoints with exact resume, a CSV + JSON-lines log, and multi-process data parallelism under ``torchrun``.

Resume: ``run_dir/last.pt`` holds model, optimizer, step, and the data and torch RNG states; a run started
again with the same ``run_dir`` continues from it as if never stopped. Checkpoint writes are atomic.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from performance_rnn.batches import Batch, TrainData
from performance_rnn.checkpoint import atomic_save, export, load_raw, model_payload
from performance_rnn.errors import CheckpointError
from performance_rnn.heads import Head
from performance_rnn.model import RecurrentModel

if TYPE_CHECKING:
    from performance_rnn.tasks import ModelSize, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000  # optimizer steps in all (a resumed run counts from where it stopped)
    batch_size: int = 32  # windows per step per process
    window: int = 512  # events per training window (Magenta: examples of at most 512 events)
    lr: float = 1e-3  # Adam, as Magenta
    lr_min_ratio: float = 0.1  # cosine decay to lr * ratio at the last step
    warmup_steps: int = 100
    clip_norm: float = 3.0  # Magenta's clip_norm
    eval_every: int = 500  # steps between validation passes (and checkpoint writes)
    eval_batches: int = 50  # cap on validation batches per pass (0 = whole split)
    checkpoint_every_s: float = 300.0  # also checkpoint at least this often in wall time
    max_minutes: float = 0.0  # stop (after a checkpoint) when this much wall time has passed in this run; 0 = off
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads on CPU (0 = torch's default)
    amp: str = "none"  # "bf16": bfloat16 autocast for the forward pass (weights, optimizer and loss stay fp32)


def check_config(cfg: TrainConfig) -> None:
    if cfg.amp not in ("none", "bf16"):
        raise ValueError(f"amp must be 'none' or 'bf16', got {cfg.amp!r}")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_loss(model: Callable[..., tuple[Tensor, Any]], head: Head, batch: Batch, device: torch.device,
               amp: str = "none") -> tuple[Tensor, Tensor]:
    """-> (sum of negative log-likelihood, number of scored steps)."""
    controls = None if batch.controls is None else batch.controls.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        params, _ = model(batch.inputs.to(device), None, controls)  # (B, T, P)
    params = params.float()
    nll = -head.log_prob(params, batch.targets.to(device))  # (B, T)
    if batch.mask is not None:
        mask = batch.mask.to(device)
        return (nll * mask).sum(), mask.sum()
    return nll.sum(), torch.tensor(nll.numel(), device=device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, head: Head, data: TrainData, split: str, cfg: TrainConfig,
             max_batches: int = 0) -> float:
    """Mean NLL per scored step over ``split`` (nats). Under DDP each rank takes every world-th batch."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = torch.device(cfg.device)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for i, batch in enumerate(data.eval_batches(split, cfg.batch_size, cfg.window)):
        if max_batches and i >= max_batches:
            break
        if i % world == rank:
            nll, n = batch_loss(model, head, batch, device, cfg.amp)
            total += torch.stack([nll.double(), n.double()])
    if dist.is_initialized():
        dist.all_reduce(total)
    model.train(was_training)
    return float(total[0] / total[1].clamp_min(1))


class _StopFlag:
    """Set by SIGINT/SIGTERM so the loop stops after a checkpoint instead of dying mid-write."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handler
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        log.warning("signal %d: stopping after the next checkpoint", signum)
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    data: TrainData,
    model: RecurrentModel,
    head: Head,
    cfg: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    kind: str,
    codec: dict[str, Any],
    extra: dict[str, Any] | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train until ``cfg.steps`` (resuming from ``run_dir/last.pt``). Returns the final metrics.

    Under ``torchrun`` (WORLD_SIZE > 1) it runs data-parallel (gloo on CPU, nccl on CUDA); rank 0 writes.
    """
    check_config(cfg)
    run = Path(run_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    if device.type == "cuda" and dist.is_initialized():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng([cfg.seed, rank])
    state: dict[str, Any] = {"step": 0, "best_val": float("inf"), "wall_s": 0.0, "tokens": 0}
    last = run / "last.pt"
    if last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        state.update(ckpt["train_state"])
        rng.bit_generator.state = json.loads(ckpt["data_rng"][rank] if rank < len(ckpt["data_rng"]) else "null") \
            or rng.bit_generator.state
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at step %d", last, state["step"])
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    run.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "codec": codec, "train_config": asdict(cfg), "world_size": world, **(extra or {})}

    def save() -> None:
        rngs = [json.dumps(rng.bit_generator.state)]
        if dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if rank == 0:
            payload = model_payload(kind, model, codec, train_state=dict(state), data_rng=rngs,
                                    optimizer=opt.state_dict(), torch_rng=torch.get_rng_state(), meta=meta)
            atomic_save(payload, last)

    def write_log(row: dict[str, Any]) -> None:
        if rank != 0:
            return
        with open(run / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        new = not (run / "log.csv").exists()
        with open(run / "log.csv", "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "train_nll", "val_nll", "lr", "tokens", "wall_s", "tok_per_s"],
                               extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    start = time.monotonic()
    wall0 = state["wall_s"]
    last_ckpt = start
    run_nll, run_n = 0.0, 0
    tick_t, tick_tokens = time.monotonic(), state["tokens"]
    with _StopFlag() as flag:
        while state["step"] < cfg.steps:
            step = state["step"]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            batch = data.train_batch(cfg.batch_size, cfg.window, rng)
            nll, n = batch_loss(ddp, head, batch, device, cfg.amp)
            loss = nll / n.clamp_min(1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
            opt.step()
            state["step"] = step + 1
            state["tokens"] += int(n) * world
            run_nll, run_n = run_nll + float(nll.detach()), run_n + int(n)
            state["wall_s"] = wall0 + time.monotonic() - start
            done = state["step"] >= cfg.steps
            timed_out = bool(cfg.max_minutes) and time.monotonic() - start > cfg.max_minutes * 60
            stop = flag.stop or timed_out
            due = time.monotonic() - last_ckpt > cfg.checkpoint_every_s
            if dist.is_initialized():  # every rank must agree on when to stop and to save
                t = torch.tensor([float(stop), float(due)], device=device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                stop, due = bool(t[0].item()), bool(t[1].item())
            if state["step"] % cfg.eval_every == 0 or done:
                val = evaluate(model, head, data, "validation", cfg, cfg.eval_batches)
                now = time.monotonic()
                row = {"step": state["step"], "train_nll": run_nll / max(1, run_n), "val_nll": val,
                       "lr": lr_at(step, cfg), "tokens": state["tokens"], "wall_s": round(state["wall_s"], 1),
                       "tok_per_s": round((state["tokens"] - tick_tokens) / max(1e-9, now - tick_t), 1)}
                tick_t, tick_tokens = now, state["tokens"]
                run_nll, run_n = 0.0, 0
                state["best_val"] = min(state["best_val"], val)
                write_log(row)
                if progress and rank == 0:
                    progress(state["step"], cfg.steps, row)
                save()
                last_ckpt = time.monotonic()
            elif stop or due:
                save()
                last_ckpt = time.monotonic()
            elif progress and rank == 0:
                progress(state["step"], cfg.steps, {})
            if stop:
                log.warning("stopped at step %d (checkpoint saved to %s)", state["step"], last)
                break
    if dist.is_initialized():
        dist.barrier()
    return dict(state)


# ---- one task, end to end: sizes from the checkpoint on resume, the loop, the export -----------------------------

def size_of(ckpt: dict[str, Any], dropout: float | None = None) -> ModelSize:
    """The architecture a checkpoint was trained with (its dropout unless ``dropout`` is given)."""
    from performance_rnn.tasks import ModelSize

    mc = ckpt["model_config"]
    return ModelSize(layers=int(mc["num_layers"]), hidden=int(mc["hidden_size"]), embed=int(mc["embed_size"]),
                     mixtures=int(ckpt.get("codec", {}).get("num_mixtures", 0)),
                     dropout=float(mc.get("dropout", 0.0)) if dropout is None else dropout)


def resolve_size(task: Task, given: Mapping[str, Any], source: str | os.PathLike[str] | None) -> ModelSize:
    """The model size of a run: the task's defaults with the ``given`` flags (ModelSize field -> value) over
    them, or, when the run continues from ``source`` (its last.pt or --init-from), that checkpoint's size.

    Raises CheckpointError when ``source`` is another task's, and ValueError when a given flag contradicts it."""
    if source is None:
        return replace(task.defaults.size, **given)
    ckpt = load_raw(source)
    if ckpt["kind"] != task.name:
        raise CheckpointError(f"{source}: a {ckpt['kind']!r} checkpoint, not a {task.name} one")
    size = size_of(ckpt, given.get("dropout"))
    clash = [f"--{name} {value} (it has {getattr(size, name)})" for name, value in given.items()
             if name != "dropout" and value != getattr(size, name)]
    if clash:
        raise ValueError(f"{source} continues at its own size; drop or correct {', '.join(clash)}")
    return size


def train_task(
    task: Task,
    run_dir: str | os.PathLike[str],
    cfg: TrainConfig,
    *,
    data: str | os.PathLike[str] | None,
    size: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    init_from: str | os.PathLike[str] | None = None,
    export_to: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train ``task`` in ``run_dir`` through the one loop, then export (fp16) to ``export_to`` if the run reached
    ``cfg.steps``. ``size``: the ModelSize fields given explicitly; a run that resumes (``run_dir/last.pt``) or
    starts from ``init_from`` takes its architecture from that checkpoint (contradicting ``size`` -> ValueError).
    Weights are initialised from ``cfg.seed``. Returns the loop's final state, with "export" (the path or None)."""
    last = Path(run_dir) / "last.pt"
    source = last if last.exists() else init_from
    model_size = resolve_size(task, dict(size or {}), source)
    setup = task.training(None if data is None else Path(data), model_size, dict(options or {}))
    init = None
    if source is not None:
        ckpt = load_raw(source)
        mine = {k: v for k, v in asdict(setup.model_config).items() if k != "dropout"}
        theirs = {k: v for k, v in ckpt["model_config"].items() if k != "dropout"}
        if mine != theirs:
            diff = ", ".join(f"{k} {theirs.get(k)} vs {v}" for k, v in mine.items() if theirs.get(k) != v)
            raise ValueError(f"{source}: the checkpoint does not fit these data and options ({diff})")
        if source != last:
            init = ckpt["state_dict"]
    torch.manual_seed(cfg.seed)
    model = RecurrentModel(setup.model_config)
    if init is not None:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in init.items()})
        log.info("starting from the weights of %s", source)
    state = train(setup.data, model, setup.head, cfg, run_dir, kind=task.name, codec=setup.codec, extra=setup.extra,
                  progress=progress)
    done = export_to is not None and state["step"] >= cfg.steps and int(os.environ.get("RANK", "0")) == 0
    if done and export_to is not None:
        export(last, export_to)
    return {**state, "export": str(export_to) if done else None}
