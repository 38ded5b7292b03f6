"""routes/meta.py and settings: health, models and cards, and names that cannot leave the checkpoints folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.settings import Settings, resolve_inside


def test_health(client: TestClient) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["models"] == {"music": True, "text": True, "strokes": True}
    assert body["engine_streams"] == 0 and body["engine_capacity"] == 4 + 3 + 2


def test_models_with_cards(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert set(models) == {"music", "text", "strokes"}  # music-scores.pt is not in this folder: skipped
    assert [(m["kind"], m["default"]) for m in models.values()] == [("music", True), ("text", False),
                                                                     ("strokes", False)]
    assert models["music"]["loaded"] and models["music"]["has_card"] and models["music"]["parameters"] > 0
    assert models["music"]["config"]["hidden_size"] == 32
    assert not models["text"]["has_card"]
    detail = client.get("/api/models/music").json()
    assert detail["card"].startswith("# Music model")
    card = client.get("/api/models/music/card")
    assert card.headers["content-type"].startswith("text/markdown") and "baby model" in card.text
    assert client.get("/api/models/text/card").status_code == 404


@pytest.mark.parametrize("name", ["../secret", "..%2Fsecret", "%2e%2e%2fsecret", "/etc/passwd", "music.pt",
                                  "..", "music/../../secret"])
def test_a_model_name_cannot_escape_the_checkpoints_folder(client: TestClient, name: str) -> None:
    for path in (f"/api/models/{name}", f"/api/models/{name}/card"):
        r = client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert "outside the checkpoints folder" not in r.text


@pytest.mark.parametrize("name", ["../music.pt", "/etc/passwd", "sub/music.pt", "..", ".hidden", ""])
def test_settings_refuse_checkpoint_paths(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file name"):
        Settings(checkpoints_dir=tmp_path, music_checkpoints=["music.pt", name])
    with pytest.raises(ValidationError, match="file name"):
        Settings(checkpoints_dir=tmp_path, text_checkpoint=name)


@pytest.mark.parametrize(("names", "match"), [([], "at least 1"), (["a.pt", "a.pth"], "distinct stems"),
                                               (["music.pt", "text.pt"], "sibling")])
def test_settings_refuse_music_names_that_clash(names: list[str], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Settings(music_checkpoints=names)


def test_music_checkpoints_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().music_checkpoints == ["music.pt", "music-scores.pt"]
    assert Settings().music_names == ["music", "music-scores"]
    monkeypatch.setenv("PERFRNN_MUSIC_CHECKPOINTS", '["music-scores.pt", "music.pt"]')
    assert Settings().music_names == ["music-scores", "music"]


def test_the_single_music_checkpoint_setting_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(music_checkpoint="old.pt").music_checkpoints == ["old.pt"]
    monkeypatch.setenv("PERFRNN_MUSIC_CHECKPOINT", "old.pt")
    assert Settings().music_checkpoints == ["old.pt"]
    assert Settings(music_checkpoints=["a.pt", "b.pt"]).music_checkpoints == ["a.pt", "b.pt"]  # the list wins


@pytest.mark.parametrize("name", ["../secret.md", "a/../../secret.md", "/etc/passwd", "..", "a\\..\\b", "x\0y"])
def test_resolve_inside_refuses_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        resolve_inside(tmp_path, name)
    assert resolve_inside(tmp_path, "music.pt") == tmp_path.resolve() / "music.pt"


def test_defaults_bind_to_loopback() -> None:
    assert Settings().host == "127.0.0.1"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFRNN_PORT", "9123")
    monkeypatch.setenv("PERFRNN_MAX_RENDERS", "3")
    s = Settings()
    assert (s.port, s.max_renders) == (9123, 3)


def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "piano-roll" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
