"""Dependencies, each declared once as an ``Annotated`` alias. They read the ``Runtime`` the lifespan built.

Tests replace one with ``app.dependency_overrides[get_port_opener] = ...`` rather than monkeypatching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from midi_io.ports import OutputPort, open_output
from performance_rnn.engine import Engine
from performance_rnn.music import MusicModel
from performance_rnn.strokegen import StrokeModel
from performance_rnn.textgen import TextModel
from service.errors import ModelUnavailable
from service.sessions import PortOpener, PortSessions, Slots
from service.settings import Settings


@dataclass
class Models:
    """What the lifespan loaded; ``errors`` says why a model is missing."""

    music: MusicModel | None = None
    text: TextModel | None = None
    strokes: StrokeModel | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Runtime:
    """Everything built once at start-up and shared by all requests."""

    settings: Settings
    models: Models
    engine: Engine | None  # None when the music model is missing
    sessions: PortSessions | None
    renders: Slots
    live: Slots
    siblings: Slots  # text and strokes jobs

    def require(self, name: str) -> None:
        if getattr(self.models, name) is None:
            reason = self.models.errors.get(name, "not loaded")
            raise ModelUnavailable(f"the {name} model is unavailable: {reason}")


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(rt: RuntimeDep) -> Settings:
    return rt.settings


def get_music(rt: RuntimeDep) -> MusicModel:
    rt.require("music")
    assert rt.models.music is not None
    return rt.models.music


def get_engine(rt: RuntimeDep) -> Engine:
    rt.require("music")
    assert rt.engine is not None
    return rt.engine


def get_text_model(rt: RuntimeDep) -> TextModel:
    rt.require("text")
    assert rt.models.text is not None
    return rt.models.text


def get_stroke_model(rt: RuntimeDep) -> StrokeModel:
    rt.require("strokes")
    assert rt.models.strokes is not None
    return rt.models.strokes


def get_sessions(rt: RuntimeDep) -> PortSessions:
    rt.require("music")
    assert rt.sessions is not None
    return rt.sessions


def _open_virtual(name: str, api: str | None) -> OutputPort:
    return open_output(name, virtual=True, api=api)


def get_port_opener() -> PortOpener:
    """How a port session opens its port: a virtual rtmidi output (tests override this with a fake)."""
    return _open_virtual


SettingsDep = Annotated[Settings, Depends(get_settings)]
MusicDep = Annotated[MusicModel, Depends(get_music)]
EngineDep = Annotated[Engine, Depends(get_engine)]
TextModelDep = Annotated[TextModel, Depends(get_text_model)]
StrokeModelDep = Annotated[StrokeModel, Depends(get_stroke_model)]
SessionsDep = Annotated[PortSessions, Depends(get_sessions)]
PortOpenerDep = Annotated[PortOpener, Depends(get_port_opener)]
