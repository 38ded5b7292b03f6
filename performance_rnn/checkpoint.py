"""Self-describing checkpoints of primitives only, so ``torch.load(..., weights_only=True)`` reads them.

Writes are atomic: the file is written beside the target, fsynced, then renamed over it, so a kill at any
moment leaves either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from performance_rnn.config import ModelConfig
from performance_rnn.errors import CheckpointError
from performance_rnn.model import RecurrentModel

FORMAT_VERSION = 1
# The shipped checkpoints (and their model cards), found from the package's location, never from the working
# directory: every task's default checkpoint and the service's checkpoints_dir start here.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


def shipped(name: str) -> Path:
    """The shipped checkpoint file ``name`` (e.g. "music.pt"), wherever the program runs from."""
    return SHIPPED_DIR / name


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint dict (weights only). Raises CheckpointError with the path and reason."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file (pickle, zip, runtime)
        raise CheckpointError(f"{p}: unreadable checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: not a checkpoint of format version {FORMAT_VERSION}")
    for key in ("kind", "model_config", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{p}: checkpoint lacks {key!r}")
    return ckpt


def model_payload(kind: str, model: RecurrentModel, codec: dict[str, Any], *, half: bool = False,
                  **extra: Any) -> dict[str, Any]:
    """The dict to save for ``model``: kind ("music", "text", "strokes"), config, codec and weights."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    return {"format_version": FORMAT_VERSION, "kind": kind, "model_config": asdict(model.config),
            "codec": codec, "state_dict": state, **extra}


def build_model(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> RecurrentModel:
    """Rebuild the model a checkpoint describes, in float32 and eval mode."""
    try:
        model = RecurrentModel(ModelConfig(**ckpt["model_config"]))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint does not match its model config: {exc}") from exc
    return model.to(device).eval()


def export(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, half: bool = True) -> dict[str, Any]:
    """The one exporter: a training checkpoint -> a shippable one: weights (fp16 when ``half``), config, codec and
    the training summary; no optimizer or RNG state. Returns the exported dict (``perfrnn export``, and every
    training run that reaches its last step)."""
    ckpt = load_raw(src)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    out = {"format_version": FORMAT_VERSION, "kind": ckpt["kind"], "model_config": ckpt["model_config"],
           "codec": ckpt.get("codec", {}), "state_dict": state, "meta": ckpt.get("meta", {}),
           "train_state": ckpt.get("train_state", {})}
    atomic_save(out, dst)
    return out
