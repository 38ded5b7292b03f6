"""Service settings: environment variables ``PERFRNN_*`` (e.g. ``PERFRNN_PORT=9000``), overridden by CLI flags.

Validated at construction, so a bad value fails at start-up rather than on the first request. Checkpoints are
named by file name only and always resolved inside ``checkpoints_dir``. Several music checkpoints may be served
(``PERFRNN_MUSIC_CHECKPOINTS='["music.pt", "music-scores.pt"]'``): each is a model named by its file's stem, and
the first that loads is the default.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from midi_io.notes import PRIMER_MAX_NOTES, PRIMER_MAX_SECONDS
from performance_rnn.checkpoint import SHIPPED_DIR

DEFAULT_CHECKPOINTS_DIR = SHIPPED_DIR  # the one shipped-checkpoints folder, found from the package
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|[0-9A-Fa-f:.]+)$")
_ORIGIN = re.compile(r"^https?://[^/\s]+/?$")
SIBLING_NAMES = ("text", "strokes")  # model names a music checkpoint's stem may not take


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERFRNN_", frozen=True)

    host: str = "127.0.0.1"  # loopback by default: expose deliberately with --host 0.0.0.0
    port: int = Field(8000, ge=1, le=65535)
    checkpoints_dir: Path = DEFAULT_CHECKPOINTS_DIR
    # file names inside checkpoints_dir; the card is <stem>.md beside each. Music models are named by their stem;
    # the first is the default, and a missing one is skipped (unless none exists: the service then says why)
    music_checkpoints: list[str] = Field(["music.pt", "music-scores.pt"], min_length=1, max_length=16)
    music_checkpoint: str | None = None  # deprecated: one music checkpoint, used when music_checkpoints is not set
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
    max_primer_seconds: float = Field(PRIMER_MAX_SECONDS, gt=0)  # an uploaded primer keeps its last N seconds
    max_primer_notes: int = Field(PRIMER_MAX_NOTES, ge=1, le=100_000)  # ... and of those its last N notes (~5 tokens)
    render_timeout_s: float = Field(60.0, gt=0)  # a render still unfinished after this answers 503
    parse_timeout_s: float = Field(10.0, gt=0, le=120)  # an upload not parsed in this long is refused (422)

    lookahead_s: float = Field(0.2, ge=0.01, le=5.0)  # live music generated ahead of the wall clock
    session_lease_s: float = Field(120.0, gt=0)  # a port session its owner has not touched for this long stops
    port_api: str | None = None  # rtmidi API for port sessions: None = platform default, "jack", "alsa"
    limit_concurrency: int = Field(256, ge=1)  # HTTP requests in flight beyond this get 503 (idle connections: no)
    idle_timeout_s: float = Field(5.0, gt=0, le=300)  # a connection silent this long (before/between requests) closes
    live_start_timeout_s: float = Field(10.0, gt=0, le=120)  # a WebSocket must send its start message this soon
    live_send_timeout_s: float = Field(10.0, gt=0, le=120)  # a WebSocket client that reads nothing this long is dropped

    # which requests are served at all (403 otherwise): the Host header must name this server (DNS rebinding),
    # and a browser's Origin must be the page's own (same host:port) or listed here ("*" turns a check off)
    allowed_hosts: list[str] | None = None  # None: the loopback names, plus the bound host (or this machine's name)
    allowed_origins: list[str] = []  # e.g. ["https://studio.example"]: other origins whose pages may call the API
    torch_threads: int = Field(1, ge=1, le=64)  # intra-op threads for the engine (set by ``perfrnn serve``)

    @model_validator(mode="before")
    @classmethod
    def _legacy_music_checkpoint(cls, data: Any) -> Any:
        """``music_checkpoint`` (flag or ``PERFRNN_MUSIC_CHECKPOINT``) serves that one file, unless
        ``music_checkpoints`` is given too."""
        if isinstance(data, dict) and data.get("music_checkpoint") and "music_checkpoints" not in data:
            return {**data, "music_checkpoints": [data["music_checkpoint"]]}
        return data

    @field_validator("music_checkpoint", "text_checkpoint", "strokes_checkpoint")
    @classmethod
    def _plain_file_name(cls, name: str | None) -> str | None:
        if name is not None:
            _check_file_name(name)
        return name

    @field_validator("music_checkpoints")
    @classmethod
    def _music_names(cls, names: list[str]) -> list[str]:
        stems = [Path(_check_file_name(name)).stem for name in names]
        if len(set(stems)) != len(stems):
            raise ValueError(f"music checkpoints need distinct stems (a model is named by its stem), got {names}")
        if clash := set(stems) & set(SIBLING_NAMES):
            raise ValueError(f"a music checkpoint may not be named {min(clash)!r}: that is a sibling model's name")
        return names

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

    @field_validator("allowed_hosts")
    @classmethod
    def _plain_hosts(cls, hosts: list[str] | None) -> list[str] | None:
        for host in hosts or []:
            if host != "*" and not _HOST.match(host.removeprefix("*.")):
                raise ValueError(f"allowed_hosts takes host names or addresses (no port or scheme), got {host!r}")
        return hosts

    @field_validator("allowed_origins")
    @classmethod
    def _plain_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"allowed_origins takes scheme://host[:port], got {origin!r}")
        return [o.rstrip("/").lower() for o in origins]

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host header values served: ``allowed_hosts``, else the loopback names plus the bound address
        (for a wildcard bind, this machine's name: list the others in ``allowed_hosts``)."""
        if self.allowed_hosts is not None:
            return [h.lower() for h in self.allowed_hosts]
        hosts = ["127.0.0.1", "localhost", "::1"]
        if self.host in ("0.0.0.0", "::", ""):
            hosts += [socket.gethostname().lower(), socket.getfqdn().lower()]
        elif self.host.lower() not in hosts:
            hosts.append(self.host.lower())
        return list(dict.fromkeys(hosts))

    @property
    def engine_streams(self) -> int:
        """Engine capacity: every admitted stream fits, so the engine itself is never the one to refuse."""
        return self.max_renders + self.max_live_streams + self.max_port_sessions

    @property
    def music_names(self) -> list[str]:
        """The music models' names: each checkpoint's stem, in the configured order."""
        return [Path(name).stem for name in self.music_checkpoints]

    def checkpoint_path(self, file_name: str) -> Path:
        """``file_name`` inside ``checkpoints_dir``. Raises ValueError for anything that would leave it."""
        return resolve_inside(self.checkpoints_dir, file_name)


def _check_file_name(name: str) -> str:
    if not _FILE_NAME.match(name) or ".." in name:
        raise ValueError(f"a checkpoint is a file name inside checkpoints_dir (no path), got {name!r}")
    return name


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
