import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from performance_rnn.checkpoint import atomic_save, load_raw
from performance_rnn.config import ModelConfig
from performance_rnn.errors import CheckpointError
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.music.data import MusicData
from performance_rnn.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]


def _run(data_dir: Path, run_dir: Path, steps: int, **kw: object) -> RecurrentModel:
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig(hidden_size=16, num_layers=1, control_size=21))
    cfg = TrainConfig(steps=steps, batch_size=3, window=32, eval_every=2, eval_batches=1, threads=1, **kw)
    train(MusicData(data_dir), model, CategoricalHead(388), cfg, run_dir, kind="music", codec={"name": "performance"})
    return model


def test_resume_is_exact(music_dataset: Path, tmp_path: Path) -> None:
    straight = _run(music_dataset, tmp_path / "a", 4)
    _run(music_dataset, tmp_path / "b", 4, max_minutes=1e-9)  # stops after its first step, with a checkpoint
    assert load_raw(tmp_path / "b" / "last.pt")["train_state"]["step"] == 1
    resumed = _run(music_dataset, tmp_path / "b", 4)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,train_nll,val_nll")


def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck.pt"
    atomic_save({"format_version": 1, "kind": "music", "model_config": {}, "state_dict": {}}, path)

    def torn_write(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"new": 1}, path)
    assert load_raw(path)["kind"] == "music"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_unreadable_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_raw(bad)
    with pytest.raises(CheckpointError, match="no such"):
        load_raw(tmp_path / "missing.pt")


def _train_cmd(data: Path, run: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "train", "--data", str(data), "--run-dir", str(run), "--steps",
            str(steps), "--layers", "1", "--hidden", "16", "--batch-size", "2", "--window", "32", "--eval-every",
            "1000", "--eval-batches", "1", "--threads", "1", "--checkpoint-every-s", "0"]


def test_sigkill_mid_run_resumes_from_last_checkpoint(music_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(music_dataset, run, 100000), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run / "last.pt").exists() and load_raw(run / "last.pt")["train_state"]["step"] >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint written in 120 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-run, possibly mid-write
        proc.wait()
    ckpt = load_raw(run / "last.pt")  # never torn: the old or the new file
    step = ckpt["train_state"]["step"]
    # the killed process's temp file may remain, torn: make sure one does, and that nothing reads it
    torn = run / f".last.pt.{proc.pid}.tmp"
    torn.write_bytes(b"PK\x03\x04 torn by SIGKILL")
    out = subprocess.run(_train_cmd(music_dataset, run, step + 2), cwd=ROOT, capture_output=True, text=True,
                         check=False, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"resumed from {run / 'last.pt'} at step {step}" in out.stderr
    assert load_raw(run / "last.pt")["train_state"]["step"] == step + 2
    # the resumed run left no temp file of its own; the torn one is as it was
    assert all(p.name.endswith(f".{proc.pid}.tmp") for p in run.glob(".*.tmp"))
    assert torn.read_bytes() == b"PK\x03\x04 torn by SIGKILL"


def test_two_process_torchrun_on_cpu(music_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "service.cli",
           *_train_cmd(music_dataset, run, 4)[3:]]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = load_raw(run / "last.pt")
    assert ckpt["meta"]["world_size"] == 2 and ckpt["train_state"]["step"] == 4
    assert len(ckpt["data_rng"]) == 2  # each rank's data stream is saved for an exact resume
