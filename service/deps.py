"""Dependencies, each declared once as an ``Annotated`` alias. They read the ``Runtime`` the lifespan built.

Tests replace one with ``app.dependency_overrides[get_port_opener] = ...`` rather than monkeypatching.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from midi_io.ports import OutputPort, open_output
from performance_rnn.engine import Engine
from performance_rnn.tasks.music.generate import MusicModel
from performance_rnn.tasks.strokes.generate import StrokeModel
from performance_rnn.tasks.text.generate import TextModel
from service.admission import Slots
from service.errors import InvalidRequest, ModelUnavailable
from service.parsing import PrimerParser
from service.port_sessions import PortOpener, PortSessions
from service.settings import SIBLING_NAMES, Settings
from service.streams import MusicBackend


@dataclass
class Models:
    """What the lifespan loaded. ``music_files`` names every music model served (its checkpoint's stem -> the
    file), in the configured order, loaded or not; ``music`` holds those that loaded; ``errors`` says why a
    model (by name) is missing."""

    music_files: dict[str, str] = field(default_factory=dict)
    music: dict[str, MusicModel] = field(default_factory=dict)
    text: TextModel | None = None
    strokes: StrokeModel | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def default_music(self) -> str:
        """What a music request without ``model`` uses: the first that loaded, else the first served."""
        return next(iter(self.music), next(iter(self.music_files), "music"))

    @property
    def names(self) -> list[str]:
        """Every model's name: the music models, then the siblings."""
        return [*self.music_files, *SIBLING_NAMES]

    def loaded(self, name: str) -> bool:
        return getattr(self, name) is not None if name in SIBLING_NAMES else name in self.music


@dataclass
class Runtime:
    """Everything built once at start-up and shared by all requests."""

    settings: Settings
    models: Models
    engines: dict[str, Engine]  # one per loaded music model, by name; each owns its model
    sessions: PortSessions | None  # None when no music model is loaded
    renders: Slots  # the admission limits count the work of every music model
    live: Slots
    siblings: Slots  # text and strokes jobs
    parser: PrimerParser  # uploaded primers, parsed in worker processes

    @property
    def engine(self) -> Engine | None:
        """The default music model's engine (None when it is missing)."""
        return self.engines.get(self.models.default_music)

    def require(self, name: str) -> None:
        if not self.models.loaded(name):
            reason = self.models.errors.get(name, "not loaded")
            raise ModelUnavailable(f"the {name} model is unavailable: {reason}")

    def music(self, name: str | None = None) -> MusicBackend:
        """The named music model with its engine (None: the default). Raises InvalidRequest (422) for a name
        not served, ModelUnavailable (503) for one that did not load."""
        name = name or self.models.default_music
        if name not in self.models.music_files:
            available = ", ".join(self.models.music_files)
            raise InvalidRequest(f"unknown music model {name!r}: the available music models are {available}")
        self.require(name)
        return MusicBackend(name, self.models.music[name], self.engines[name])


async def client_gone(request: Request) -> AsyncIterator[threading.Event]:
    """An event set once the client disconnects, for work that runs off the event loop (a render in the thread
    pool) to stop when nobody waits for it. FastAPI has read the body by now: the watcher is the only reader."""
    gone = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(rt: RuntimeDep) -> Settings:
    return rt.settings


def get_text_model(rt: RuntimeDep) -> TextModel:
    rt.require("text")
    assert rt.models.text is not None
    return rt.models.text


def get_stroke_model(rt: RuntimeDep) -> StrokeModel:
    rt.require("strokes")
    assert rt.models.strokes is not None
    return rt.models.strokes


def get_sessions(rt: RuntimeDep) -> PortSessions:
    rt.require(rt.models.default_music)
    assert rt.sessions is not None
    return rt.sessions


def _open_virtual(name: str, api: str | None) -> OutputPort:
    return open_output(name, virtual=True, api=api)


def get_port_opener() -> PortOpener:
    """How a port session opens its port: a virtual rtmidi output (tests override this with a fake)."""
    return _open_virtual


SettingsDep = Annotated[Settings, Depends(get_settings)]
TextModelDep = Annotated[TextModel, Depends(get_text_model)]
StrokeModelDep = Annotated[StrokeModel, Depends(get_stroke_model)]
SessionsDep = Annotated[PortSessions, Depends(get_sessions)]
PortOpenerDep = Annotated[PortOpener, Depends(get_port_opener)]
ClientGoneDep = Annotated[threading.Event, Depends(client_gone)]
