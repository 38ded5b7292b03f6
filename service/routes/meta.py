"""Health, and the models with their model cards. A model is named by ``text``, ``strokes`` or, for each music
model, its checkpoint's stem (``music``, ``music-scores``); its files are resolved inside the checkpoints folder,
never from a client-supplied path."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from performance_rnn.tasks.music.generate import MusicModel
from performance_rnn.tasks.strokes.generate import StrokeModel
from performance_rnn.tasks.text.generate import TextModel
from service.deps import RuntimeDep
from service.errors import NotFound
from service.schemas import Health, ModelDetail, ModelInfo, ModelKind, error_responses
from service.settings import SIBLING_NAMES, resolve_inside

router = APIRouter(tags=["meta"])

CARD_MAX_BYTES = 256 * 1024


@router.get("/health")
def health(rt: RuntimeDep) -> Health:
    """Which models are loaded, whether each music model's engine runs, and how busy the engines are (streams
    summed over the music models). ``degraded``: the default music model is not loaded, or an engine is down
    (it restarts with the next stream that needs it)."""
    models = rt.models
    loaded = {name: models.loaded(name) for name in models.names}
    engines = {name: engine.healthy for name, engine in rt.engines.items()}
    ok = models.loaded(models.default_music) and all(engines.values())
    return Health(status="ok" if ok else "degraded", models=loaded, engines=engines,
                  engine_streams=sum(engine.active for engine in rt.engines.values()),
                  engine_capacity=rt.settings.engine_streams, live_streams=rt.live.used,
                  port_sessions=0 if rt.sessions is None else len(rt.sessions))


@router.get("/models")
def list_models(rt: RuntimeDep) -> list[ModelInfo]:
    """Every model, loaded or not, with its configuration: the music models (``default`` marks the one music
    requests use without ``model``), then text and strokes."""
    return [ModelInfo(**_info(rt, name)) for name in rt.models.names]


@router.get("/models/{name}", responses=error_responses(404))
def get_model(name: str, rt: RuntimeDep) -> ModelDetail:
    """One model with its model card (Markdown)."""
    return ModelDetail(**_info(rt, _known(rt, name)), card=_card(rt, name))


@router.get("/models/{name}/card", response_class=Response,
            responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, **error_responses(404)})
def get_card(name: str, rt: RuntimeDep) -> Response:
    """The model card as Markdown."""
    card = _card(rt, _known(rt, name))
    if card is None:
        raise NotFound(f"the {name} model has no model card")
    return Response(card, media_type="text/markdown; charset=utf-8")


def _known(rt: RuntimeDep, name: str) -> str:
    """``name`` if a model has it, else NotFound (nothing else ever reaches a file name)."""
    if name not in rt.models.names:
        raise NotFound(f"no model {name!r}: the models are {', '.join(rt.models.names)}")
    return name


def _kind(name: str) -> ModelKind:
    return "text" if name == "text" else "strokes" if name == "strokes" else "music"


def _file(rt: RuntimeDep, name: str) -> str:
    if name in SIBLING_NAMES:
        return str(getattr(rt.settings, f"{name}_checkpoint"))
    return rt.models.music_files[name]


def _model(rt: RuntimeDep, name: str) -> MusicModel | TextModel | StrokeModel | None:
    return getattr(rt.models, name) if name in SIBLING_NAMES else rt.models.music.get(name)


def _card_path(rt: RuntimeDep, name: str) -> Path:
    return resolve_inside(rt.settings.checkpoints_dir, Path(_file(rt, name)).stem + ".md")


def _card(rt: RuntimeDep, name: str) -> str | None:
    path = _card_path(rt, name)
    if not path.is_file():
        return None
    return path.read_bytes()[:CARD_MAX_BYTES].decode("utf-8", errors="replace")


def _info(rt: RuntimeDep, name: str) -> dict[str, Any]:
    model = _model(rt, name)
    info: dict[str, Any] = {"name": name, "kind": _kind(name), "default": name == rt.models.default_music,
                            "file": _file(rt, name), "loaded": model is not None,
                            "error": rt.models.errors.get(name), "has_card": _card_path(rt, name).is_file()}
    if model is not None:
        net = model.model
        info["parameters"] = sum(p.numel() for p in net.parameters())
        info["config"] = {k: v for k, v in asdict(net.config).items() if isinstance(v, int | float | str | bool)}
    return info
