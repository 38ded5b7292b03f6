"""The one exporter and the one shipped-checkpoints folder."""

from __future__ import annotations

import torch

from performance_rnn.checkpoint import SHIPPED_DIR, atomic_save, build_model, export, model_payload, shipped
from performance_rnn.config import ModelConfig
from performance_rnn.model import RecurrentModel


def _training_checkpoint(path):
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig(input_size=12, embed_size=4, hidden_size=16, num_layers=2, output_size=12))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randint(0, 12, (2, 5)))[0].sum().backward()
    opt.step()
    atomic_save(model_payload("text", model, {"name": "text", "vocab": "abcdefghijkl"}, optimizer=opt.state_dict(),
                              torch_rng=torch.get_rng_state(), data_rng=["{}"], train_state={"step": 7},
                              meta={"train_config": {"steps": 7}}), path)
    return model.eval()


def test_export_keeps_fp16_weights_config_and_summary_only(tmp_path):
    model = _training_checkpoint(tmp_path / "last.pt")
    out = export(tmp_path / "last.pt", tmp_path / "text.pt")
    saved = torch.load(tmp_path / "text.pt", weights_only=True)
    assert set(saved) == {"format_version", "kind", "model_config", "codec", "state_dict", "meta", "train_state"}
    assert saved["kind"] == out["kind"] == "text" and saved["train_state"] == {"step": 7}
    assert all(v.dtype == torch.float16 for v in saved["state_dict"].values() if v.is_floating_point())
    back = build_model(saved)
    x = torch.randint(0, 12, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(back(x)[0], model(x)[0], atol=2e-2, rtol=0)
    export(tmp_path / "last.pt", tmp_path / "fp32.pt", half=False)
    fp32 = torch.load(tmp_path / "fp32.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in fp32.values() if v.is_floating_point())


def test_shipped_folder_is_found_from_the_package(tmp_path, monkeypatch):
    from service.settings import DEFAULT_CHECKPOINTS_DIR, Settings

    monkeypatch.chdir(tmp_path)
    assert SHIPPED_DIR.is_absolute() and shipped("music.pt").is_file()
    assert DEFAULT_CHECKPOINTS_DIR == SHIPPED_DIR and Settings().checkpoints_dir == SHIPPED_DIR
