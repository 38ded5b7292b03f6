"""``perfrnn serve``: the HTTP/WebSocket service and its web page.

    perfrnn serve --host 127.0.0.1 --port 8000
    perfrnn serve --music-checkpoint music.pt --music-checkpoint music-scores.pt   # or music.pt,music-scores.pt

Settings come from ``PERFRNN_*`` environment variables (see service/settings.py); a flag given here wins.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings

# flag -> Settings field; only flags actually given override the environment
_FLAGS = {
    "host": "host", "port": "port", "checkpoints_dir": "checkpoints_dir", "music_checkpoint": "music_checkpoints",
    "text_checkpoint": "text_checkpoint", "strokes_checkpoint": "strokes_checkpoint", "device": "device",
    "max_renders": "max_renders", "max_live_streams": "max_live_streams", "max_port_sessions": "max_port_sessions",
    "max_render_seconds": "max_render_seconds", "max_upload_bytes": "max_upload_bytes",
    "lookahead": "lookahead_s", "port_api": "port_api", "threads": "torch_threads",
    "limit_concurrency": "limit_concurrency", "allowed_host": "allowed_hosts", "allowed_origin": "allowed_origins",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--checkpoints-dir", default=None,
                   help="folder holding the checkpoints (music.pt, music-scores.pt, text.pt, strokes.pt) and cards")
    p.add_argument("--music-checkpoint", action="append", default=None, metavar="FILE[,FILE...]",
                   help="a music checkpoint's file name inside the checkpoints folder; repeat it (or separate names "
                        "by commas) to serve several, each a model named by its stem (music.pt -> music) that "
                        "requests choose with \"model\"; the first that loads is the default (default: music.pt, "
                        "music-scores.pt; a missing one is skipped)")
    p.add_argument("--text-checkpoint", default=None)
    p.add_argument("--strokes-checkpoint", default=None)
    p.add_argument("--device", default=None, help="cpu or cuda")
    p.add_argument("--max-renders", type=int, default=None, help="concurrent renders before 429")
    p.add_argument("--max-live-streams", type=int, default=None, help="concurrent WebSocket streams before refusal")
    p.add_argument("--max-port-sessions", type=int, default=None)
    p.add_argument("--max-render-seconds", type=float, default=None)
    p.add_argument("--max-upload-bytes", type=int, default=None, help="larger request bodies get 413")
    p.add_argument("--lookahead", type=float, default=None, help="seconds of live music generated ahead")
    p.add_argument("--port-api", choices=["jack", "alsa", "coremidi", "winmm"], default=None,
                   help="MIDI API for port sessions")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default 1)")
    p.add_argument("--limit-concurrency", type=int, default=None,
                   help="HTTP requests in flight beyond this get 503 (default 256; idle connections close after 5 s)")
    p.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                   help="a Host name clients use to reach the server (repeat it; default: 127.0.0.1, localhost, ::1 "
                        "and the --host address); other Host headers get 403 (DNS-rebinding protection). '*' = any")
    p.add_argument("--allowed-origin", action="append", default=None, metavar="SCHEME://HOST[:PORT]",
                   help="another site whose pages may call the API (repeat it); by default only the server's own "
                        "page may (other Origins get 403). '*' = any")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags given. Raises pydantic.ValidationError."""
    from service.settings import Settings

    overrides = {field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None}
    if args.music_checkpoint is not None:
        overrides["music_checkpoints"] = split_names(args.music_checkpoint)
    return Settings(**overrides)


def split_names(values: list[str]) -> list[str]:
    """``--music-checkpoint a.pt,b.pt --music-checkpoint c.pt`` -> ``["a.pt", "b.pt", "c.pt"]``."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn
    from pydantic import ValidationError

    from service.app import create_app
    from service.server import uvicorn_config

    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"perfrnn serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(settings.torch_threads)
    print(f"serving on http://{settings.host}:{settings.port}/ (checkpoints in {settings.checkpoints_dir})",
          file=sys.stderr)
    if settings.host in ("0.0.0.0", "::") and settings.allowed_hosts is None:
        print(f"serving every address: requests must name one of {', '.join(settings.trusted_hosts)} in their Host "
              "header; list the others with --allowed-host (or PERFRNN_ALLOWED_HOSTS)", file=sys.stderr)
    uvicorn.Server(uvicorn_config(create_app(settings), settings, log_level=args.log_level)).run()
    return 0
