"""Service settings: environment variables ``PERFRNN_*`` (e.g. ``PERFRNN_PORT=9000``), overridden by CLI flags.

Validated at construction, so a bad value fails at start-up rather than on the first request. Checkpoints are
named by file name only and always resolved inside ``checkpoints_dir``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CHECKPOINTS_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERFRNN_", frozen=True)

    host: str = "127.0.0.1"  # loopback by default: expose deliberately with --host 0.0.0.0
    port: int = Field(8000, ge=1, le=65535)
    checkpoints_dir: Path = DEFAULT_CHECKPOINTS_DIR
    music_checkpoint: str = "music.pt"  # file names inside checkpoints_dir; the card is <stem>.md beside it
    text_checkpoint: str = "text.pt"
    strokes_checkpoint: str = "strokes.pt"
    device: str = "cpu"

    # admission limits: past them a request gets 429 instead of slowing everyone down
    max_renders: int = Field(8, ge=1, le=256)  # concurrent offline renders (HTTP render/events)
    max_live_streams: int = Field(16, ge=0, le=256)  # concurrent WebSocket streams
    max_port_sessions: int = Field(4, ge=0, le=64)  # concurrent server-side port sessions
    max_sibling_jobs: int = Field(2, ge=1, le=64)  # concurrent text / strokes generations

    # bounded lengths
    max_render_seconds: float = Field(120.0, gt=0, le=600)  # music per render request
    max_live_seconds: float = Field(1800.0, gt=0)  # a live stream or port session ends after this much music
    max_upload_bytes: int = Field(1 << 20, ge=1024)  # request bodies, primer uploads included (413 beyond)
    max_primer_seconds: float = Field(30.0, gt=0)  # an uploaded primer keeps its last N seconds
    render_timeout_s: float = Field(60.0, gt=0)  # a render still unfinished after this answers 503

    lookahead_s: float = Field(0.2, ge=0.01, le=5.0)  # live music generated ahead of the wall clock
    session_lease_s: float = Field(120.0, gt=0)  # a port session its owner has not touched for this long stops
    port_api: str | None = None  # rtmidi API for port sessions: None = platform default, "jack", "alsa"
    limit_concurrency: int = Field(256, ge=1)  # uvicorn: open connections beyond this get 503
    torch_threads: int = Field(1, ge=1, le=64)  # intra-op threads for the engine (set by ``perfrnn serve``)

    @field_validator("music_checkpoint", "text_checkpoint", "strokes_checkpoint")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if not _FILE_NAME.match(name) or ".." in name:
            raise ValueError(f"a checkpoint is a file name inside checkpoints_dir (no path), got {name!r}")
        return name

    @field_validator("port_api")
    @classmethod
    def _known_api(cls, api: str | None) -> str | None:
        if api not in (None, "jack", "alsa", "coremidi", "winmm"):
            raise ValueError(f"port_api must be one of jack, alsa, coremidi, winmm, got {api!r}")
        return api

    @field_validator("checkpoints_dir")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        return folder.expanduser().resolve()

    @property
    def engine_streams(self) -> int:
        """Engine capacity: every admitted stream fits, so the engine itself is never the one to refuse."""
        return self.max_renders + self.max_live_streams + self.max_port_sessions

    def checkpoint_path(self, file_name: str) -> Path:
        """``file_name`` inside ``checkpoints_dir``. Raises ValueError for anything that would leave it."""
        return resolve_inside(self.checkpoints_dir, file_name)


def resolve_inside(folder: Path, file_name: str) -> Path:
    """``folder / file_name``, refusing any name with a path separator or ``..``. (A symlink the operator put
    in the folder is followed: that is a deliberate choice, not a client's.)"""
    if not _FILE_NAME.match(file_name) or ".." in file_name:
        raise ValueError(f"not a plain file name: {file_name!r}")
    root = folder.resolve()
    path = Path(os.path.normpath(root / file_name))
    if path.parent != root:
        raise ValueError(f"{file_name!r} is not inside {root}")
    return path
