"""Service fixtures: a checkpoints folder (the baby music model, tiny text and stroke models, a card), a folder with
two music checkpoints, settings, the app under its lifespan, and a fake port opener. The MIDI fakes and JACK
helpers live in the ``testing`` package; ``FakePort``, ``JackReceiver`` and ``unmatched_note_ons`` stay importable
from here for the tests that import them from this module."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from performance_rnn.checkpoint import atomic_save, model_payload
from performance_rnn.codecs.text import TextCodec
from performance_rnn.config import ModelConfig
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.model import RecurrentModel
from service.app import create_app
from service.deps import get_port_opener
from service.settings import Settings
from testing.jack import JackReceiver
from testing.midi import FakePort, unmatched_note_ons

__all__ = ["FakePort", "FakePorts", "JackReceiver", "unmatched_note_ons"]  # imported by tests in this folder

LOCAL_URL = "http://127.0.0.1:8000"
TEXT_VOCAB = "\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MUSIC_CARD = "# Music model\n\nA baby model for tests.\n"
SCORES_CARD = "# Scores model\n\nThe same baby model under a second name.\n"


def tiny_text_checkpoint(path: Path) -> None:
    torch.manual_seed(0)
    codec = TextCodec(TEXT_VOCAB)
    cfg = ModelConfig(input_kind="tokens", input_size=codec.vocab_size, embed_size=8, hidden_size=16, num_layers=1,
                      output_size=codec.vocab_size)
    atomic_save(model_payload("text", RecurrentModel(cfg).eval(), codec.to_dict()), path)


def tiny_stroke_checkpoint(path: Path) -> None:
    from performance_rnn.tasks.strokes.data import codec_dict

    torch.manual_seed(1)
    head = StrokeMixtureHead(2)
    model = RecurrentModel(ModelConfig(input_kind="vectors", input_size=5, hidden_size=16, num_layers=1,
                                       output_size=head.num_params)).eval()
    with torch.no_grad():
        model.out.bias[:3] = torch.tensor([3.0, 0.5, -2.0])  # mostly pen-down, ends eventually
    atomic_save(model_payload("strokes", model, codec_dict(20.0, 2)), path)


@pytest.fixture(scope="session")
def checkpoints_dir(baby_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    shutil.copy(baby_checkpoint, folder / "music.pt")
    (folder / "music.md").write_text(MUSIC_CARD, encoding="utf-8")
    tiny_text_checkpoint(folder / "text.pt")
    tiny_stroke_checkpoint(folder / "strokes.pt")
    (tmp_path_factory.getbasetemp() / "secret.md").write_text("outside the checkpoints folder")
    return folder


@pytest.fixture(scope="session")
def wide_checkpoints_dir(baby_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A music model as costly to prime as a real one (2x256, untrained: random music), the baby's codec."""
    from dataclasses import replace

    from performance_rnn.checkpoint import load_raw

    ckpt = load_raw(baby_checkpoint)
    torch.manual_seed(2)
    config = replace(ModelConfig(**ckpt["model_config"]), hidden_size=256, num_layers=2)
    folder = tmp_path_factory.mktemp("wide")
    atomic_save(model_payload("music", RecurrentModel(config).eval(), ckpt["codec"]), folder / "music.pt")
    return folder


@pytest.fixture(scope="session")
def two_models_dir(baby_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two music checkpoints (the baby model under both default names, each with its card), no siblings."""
    folder = tmp_path_factory.mktemp("two-models")
    for name in ("music", "music-scores"):
        shutil.copy(baby_checkpoint, folder / f"{name}.pt")
    (folder / "music.md").write_text(MUSIC_CARD, encoding="utf-8")
    (folder / "music-scores.md").write_text(SCORES_CARD, encoding="utf-8")
    return folder


@pytest.fixture
def settings(checkpoints_dir: Path) -> Settings:
    return Settings(checkpoints_dir=checkpoints_dir, max_renders=4, max_live_streams=3, max_port_sessions=2,
                    max_render_seconds=60, max_upload_bytes=64 * 1024, render_timeout_s=30, lookahead_s=0.2,
                    session_lease_s=30, max_live_seconds=120)


class LocalClient(TestClient):
    """A TestClient whose HTTP and WebSocket requests name 127.0.0.1:8000 as their Host (Starlette's own joins
    WebSocket paths to ws://testserver, a Host the server refuses by default)."""

    def websocket_connect(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().websocket_connect(urljoin(LOCAL_URL.replace("http", "ws", 1), url), *args, **kwargs)


class FakePorts:
    """The port opener for tests: every session gets a FakePort that records what it was sent."""

    def __init__(self) -> None:
        self.opened: dict[str, object] = {}

    def __call__(self, name: str, api: str | None) -> object:
        self.opened[name] = FakePort()
        return self.opened[name]


@pytest.fixture
def fake_ports() -> FakePorts:
    return FakePorts()


@pytest.fixture
def make_client(fake_ports: FakePorts) -> Iterator[Callable[..., TestClient]]:
    """``make_client(settings)``: a TestClient whose lifespan runs (and ends with the test)."""
    opened: list[TestClient] = []

    def make(s: Settings, *, ports: Callable[[str, str | None], object] | None = fake_ports) -> TestClient:
        app: FastAPI = create_app(s)
        if ports is not None:
            app.dependency_overrides[get_port_opener] = lambda: ports
        client = LocalClient(app, base_url=LOCAL_URL)  # a Host the server answers to by default
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def serve(fake_ports: FakePorts) -> Iterator[Callable[[Settings], str]]:
    """``serve(settings)`` -> "127.0.0.1:PORT": the app on a real uvicorn server on loopback, configured as
    ``perfrnn serve`` configures it (service/server.py), stopped with the test."""
    import uvicorn

    from service.server import uvicorn_config

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(s: Settings) -> str:
        app = create_app(s)
        app.dependency_overrides[get_port_opener] = lambda: fake_ports
        server = uvicorn.Server(uvicorn_config(app, s, log_level="warning", port=0))
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def client(make_client: Callable[..., TestClient], settings: Settings) -> TestClient:
    return make_client(settings)
