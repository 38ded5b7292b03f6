"""The FastAPI app: ``create_app(settings)`` wires the routers; its lifespan loads the checkpoints once and
starts one engine per music model, shared by every request for that model.

A missing or unreadable checkpoint does not stop the service: the endpoints that need it answer 503 and
``/api/health`` says which models are loaded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from performance_rnn.errors import PerformanceRNNError
from performance_rnn.tasks.music.generate import load_music, music_engine
from performance_rnn.tasks.strokes.generate import load_stroke_model
from performance_rnn.tasks.text.generate import load_text_model
from service.admission import Slots
from service.deps import Models, Runtime
from service.errors import BodyTooLarge, install_error_handlers
from service.guard import GuardConfig, InFlightLimit, RequestGuard
from service.parsing import ParseConfig, PrimerParser
from service.playback import settle_for_realtime
from service.port_sessions import PortSessions
from service.routes import meta, music, page, sessions, siblings, websocket
from service.settings import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
M = TypeVar("M")


def load_models(settings: Settings) -> Models:
    """Load each checkpoint that exists; remember why the others could not be."""
    models = Models(music_files=music_files(settings))
    for name, file_name in models.music_files.items():
        if (mm := _load(settings, name, file_name, load_music, models.errors)) is not None:
            models.music[name] = mm
    models.text = _load(settings, "text", settings.text_checkpoint, load_text_model, models.errors)
    models.strokes = _load(settings, "strokes", settings.strokes_checkpoint, load_stroke_model, models.errors)
    return models


def music_files(settings: Settings) -> dict[str, str]:
    """Name -> file of each configured music checkpoint that exists. A missing one is skipped with a warning,
    unless none exists: then the first is kept, so that the service says why it has no music."""
    files = dict(zip(settings.music_names, settings.music_checkpoints, strict=True))
    present = {name: f for name, f in files.items() if settings.checkpoint_path(f).is_file()}
    if not present:
        return dict([next(iter(files.items()))])
    for name in (n for n in files if n not in present):
        log.warning("skipping the %s music model: no %s in %s", name, files[name], settings.checkpoints_dir)
    return present


def _load(settings: Settings, name: str, file_name: str, load: Callable[[Path, str], M],
          errors: dict[str, str]) -> M | None:
    path = settings.checkpoint_path(file_name)
    try:
        model = load(path, settings.device)
    except (PerformanceRNNError, OSError, ValueError) as exc:
        errors[name] = str(exc).replace(f"{settings.checkpoints_dir}/", "")  # no server paths
        log.warning("no %s model: %s", name, exc)
        return None
    log.info("loaded the %s model from %s", name, path)
    return model


def build_runtime(settings: Settings) -> Runtime:
    """The models, one started engine per music model, and the port sessions (all models share their limit)."""
    models = load_models(settings)
    for mm in models.music.values():  # measured now, not inside the first request that sends a key alone
        if mm.conditioned:
            mm.own_density()
    engines = {name: music_engine(mm, max_streams=settings.engine_streams).start()
               for name, mm in models.music.items()}
    sessions_ = None
    if engines:
        sessions_ = PortSessions(limit=settings.max_port_sessions, lease_s=settings.session_lease_s,
                                 lookahead_s=settings.lookahead_s, max_seconds=settings.max_live_seconds,
                                 default_api=settings.port_api).start()
    return Runtime(settings, models, engines, sessions_, renders=Slots(settings.max_renders, "render"),
                   live=Slots(settings.max_live_streams, "live stream"),
                   siblings=Slots(settings.max_sibling_jobs, "text/strokes"),
                   parser=PrimerParser(ParseConfig(settings.max_primer_seconds, settings.max_primer_notes,
                                                   settings.parse_timeout_s)))


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        app.state.runtime = runtime
        settle_for_realtime()
        try:
            yield
        finally:
            if runtime.sessions is not None:
                runtime.sessions.close()  # all notes off on every port
            for engine in runtime.engines.values():
                engine.stop()  # ends every stream; WebSocket clients get their note-offs
            runtime.parser.close()

    app = FastAPI(title="Performance RNN", version="0.1.0", lifespan=lifespan,
                  description="Real-time expressive piano generation: render, stream, play into MIDI ports.")
    install_error_handlers(app)
    for router in (music.router, siblings.router, page.router, meta.router, sessions.router, websocket.router):
        app.include_router(router, prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    # the last added runs first: foreign Host/Origin refused, then requests in flight bounded, then bodies
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(InFlightLimit, limit=settings.limit_concurrency)
    app.add_middleware(RequestGuard, config=GuardConfig.of(settings.trusted_hosts, settings.allowed_origins))
    return app


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413: at once by Content-Length, else as they stream
    (the route's body parsing then raises BodyTooLarge, which the error handlers answer)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _plain_413(send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


async def _plain_413(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body is larger than the {limit} bytes allowed"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
