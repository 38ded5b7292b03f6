"""The task registry and each task's one set of defaults, checked against the shipped checkpoints."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from performance_rnn.checkpoint import SHIPPED_DIR
from performance_rnn.tasks import TASKS, get_task


def test_registry_names_three_tasks_and_refuses_others():
    assert TASKS == ("music", "text", "strokes")
    assert [get_task(name).name for name in TASKS] == list(TASKS)
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        get_task("poetry")


@pytest.mark.parametrize("name", TASKS)
def test_default_checkpoint_is_the_shipped_one_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = get_task(name).defaults.checkpoint
    assert path.is_absolute() and path.parent == SHIPPED_DIR and path.is_file()
    assert torch.load(path, weights_only=True)["kind"] == name


@pytest.mark.parametrize("name", ["text", "strokes"])
def test_sibling_defaults_are_what_the_shipped_checkpoint_was_trained_with(name):
    """The defaults are the shipped model's settings (its stored train_config and model config), so
    ``perfrnn train --task NAME`` with no flags retrains it (the cards say so too)."""
    defaults = get_task(name).defaults
    ckpt = torch.load(defaults.checkpoint, weights_only=True)
    stored = ckpt["meta"]["train_config"]
    ours = asdict(defaults.train)
    for key in ("steps", "batch_size", "window", "lr", "lr_min_ratio", "warmup_steps", "clip_norm", "eval_every",
                "eval_batches", "seed", "threads"):
        assert ours[key] == stored[key], key
    mc = ckpt["model_config"]
    size = defaults.size
    assert (size.layers, size.hidden, size.embed, size.dropout) == (mc["num_layers"], mc["hidden_size"],
                                                                    mc["embed_size"], mc["dropout"])
    assert size.mixtures == int(ckpt["codec"].get("num_mixtures", 0))


def test_run_dirs_and_data_are_relative_to_the_working_directory():
    for name in TASKS:
        d = get_task(name).defaults
        assert str(d.run_dir) == f"runs/{name}" and (d.data is None or not d.data.is_absolute())
