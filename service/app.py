"""The FastAPI app: ``create_app(settings)`` wires the routers; its lifespan loads the checkpoints once and
starts the one engine that every request shares.

A missing or unreadable checkpoint does not stop the service: the endpoints that need it answer 503 and
``/api/health`` says which models are loaded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from performance_rnn.errors import PerformanceRNNError
from performance_rnn.music import load_music, music_engine
from performance_rnn.strokegen import load_stroke_model
from performance_rnn.textgen import load_text_model
from service.deps import Models, Runtime
from service.errors import BodyTooLarge, install_error_handlers
from service.live import freeze_heap
from service.routes import live, meta, music, sessions, siblings
from service.sessions import PortSessions, Slots
from service.settings import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


def load_models(settings: Settings) -> Models:
    """Load each checkpoint that exists; remember why the others could not be."""
    models = Models()
    loaders: dict[str, tuple[str, Callable[[Path, str], object]]] = {
        "music": (settings.music_checkpoint, load_music), "text": (settings.text_checkpoint, load_text_model),
        "strokes": (settings.strokes_checkpoint, load_stroke_model)}
    for name, (file_name, load) in loaders.items():
        path = settings.checkpoint_path(file_name)
        try:
            setattr(models, name, load(path, settings.device))
            log.info("loaded the %s model from %s", name, path)
        except (PerformanceRNNError, OSError, ValueError) as exc:
            models.errors[name] = str(exc).replace(f"{settings.checkpoints_dir}/", "")  # no server paths
            log.warning("no %s model: %s", name, exc)
    return models


def build_runtime(settings: Settings) -> Runtime:
    models = load_models(settings)
    engine = sessions_ = None
    if models.music is not None:
        engine = music_engine(models.music, max_streams=settings.engine_streams).start()
        sessions_ = PortSessions(models.music, engine, limit=settings.max_port_sessions,
                                 lease_s=settings.session_lease_s, lookahead_s=settings.lookahead_s,
                                 max_seconds=settings.max_live_seconds, default_api=settings.port_api).start()
    return Runtime(settings, models, engine, sessions_, renders=Slots(settings.max_renders, "render"),
                   live=Slots(settings.max_live_streams, "live stream"),
                   siblings=Slots(settings.max_sibling_jobs, "text/strokes"))


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        app.state.runtime = runtime
        freeze_heap()
        try:
            yield
        finally:
            if runtime.sessions is not None:
                runtime.sessions.close()  # all notes off on every port
            if runtime.engine is not None:
                runtime.engine.stop()  # ends every stream; WebSocket clients get their note-offs

    app = FastAPI(title="Performance RNN", version="0.1.0", lifespan=lifespan,
                  description="Real-time expressive piano generation: render, stream, play into MIDI ports.")
    install_error_handlers(app)
    for router in (music.router, siblings.router, meta.router, sessions.router, live.router):
        app.include_router(router, prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
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
