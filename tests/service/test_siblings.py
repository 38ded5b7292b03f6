"""routes/siblings.py: text and strokes, and 503 with a clear message when their checkpoint is missing."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from fastapi.testclient import TestClient

from service.settings import Settings


def test_text_continues_the_prime(client: TestClient) -> None:
    request = {"prime": "ROMEO:", "length": 40, "temperature": 0.8, "seed": 2}
    r = client.post("/api/text", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prime"] == "ROMEO:" and len(body["text"]) == 40
    assert client.post("/api/text", json=request).json() == body  # deterministic per seed


def test_text_outside_the_vocabulary_is_422_naming_the_characters(client: TestClient) -> None:
    r = client.post("/api/text", json={"prime": "JULIET: ☃", "length": 5})
    assert r.status_code == 422
    assert "U+2603" in r.json()["detail"]


def test_strokes_json_and_svg(client: TestClient) -> None:
    r = client.post("/api/strokes", json={"n": 3, "temperature": 0.4, "seed": 1})
    assert r.status_code == 200, r.text
    drawings = r.json()["drawings"]
    assert len(drawings) == 3 and all(len(row) == 3 and row[2] in (0, 1) for d in drawings for row in d)
    svg = client.post("/api/strokes/svg", json={"n": 4, "cols": 2})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(svg.text).tag.endswith("svg")


def test_strokes_continue_a_partial_drawing(client: TestClient) -> None:
    partial = [[20.0, 20.0, 0], [30.0, 0.0, 1]]
    r = client.post("/api/strokes", json={"n": 2, "partial": partial})
    assert r.status_code == 200, r.text
    assert all(d[:2] == [[20.0, 20.0, 0], [30.0, 0.0, 1]] for d in r.json()["drawings"])
    assert client.post("/api/strokes", json={"partial": [[1, 2, 3]]}).status_code == 422
    assert client.post("/api/strokes", json={"partial": []}).status_code == 422


def test_text_and_strokes_are_503_without_their_checkpoints(make_client, checkpoints_dir: Path,
                                                          tmp_path: Path) -> None:
    shutil.copy(checkpoints_dir / "music.pt", tmp_path / "music.pt")
    c = make_client(Settings(checkpoints_dir=tmp_path))
    for path, body in (("/api/text", {}), ("/api/strokes", {}), ("/api/strokes/svg", {})):
        r = c.post(path, json=body)
        assert r.status_code == 503
        assert "unavailable" in r.json()["detail"] and "no such checkpoint file" in r.json()["detail"]
    assert c.post("/api/music/render", json={"seconds": 1}).status_code == 200  # music still works
    health = c.get("/api/health").json()
    assert health["status"] == "ok" and health["models"] == {"music": True, "text": False, "strokes": False}
