"""Health, and the models with their model cards. A model is named by ``music``, ``text`` or ``strokes``
only; its files are resolved inside the checkpoints folder, never from a client-supplied path."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from service.deps import RuntimeDep
from service.errors import NotFound
from service.schemas import Health, ModelDetail, ModelInfo, ModelName, error_responses
from service.settings import resolve_inside

router = APIRouter(tags=["meta"])

MODEL_NAMES: tuple[ModelName, ...] = ("music", "text", "strokes")
CARD_MAX_BYTES = 256 * 1024


@router.get("/health")
def health(rt: RuntimeDep) -> Health:
    """Which models are loaded, and how busy the engine is."""
    loaded: dict[str, bool] = {name: getattr(rt.models, name) is not None for name in MODEL_NAMES}
    return Health(status="ok" if loaded["music"] else "degraded", models=loaded,
                  engine_streams=0 if rt.engine is None else rt.engine.active,
                  engine_capacity=rt.settings.engine_streams, live_streams=rt.live.used,
                  port_sessions=0 if rt.sessions is None else len(rt.sessions))


@router.get("/models")
def list_models(rt: RuntimeDep) -> list[ModelInfo]:
    """The three models, loaded or not, with their configurations."""
    return [ModelInfo(**_info(rt, name)) for name in MODEL_NAMES]


@router.get("/models/{name}", responses=error_responses(404))
def get_model(name: ModelName, rt: RuntimeDep) -> ModelDetail:
    """One model with its model card (Markdown)."""
    return ModelDetail(**_info(rt, name), card=_card(rt, name))


@router.get("/models/{name}/card", response_class=Response,
            responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, **error_responses(404)})
def get_card(name: ModelName, rt: RuntimeDep) -> Response:
    """The model card as Markdown."""
    card = _card(rt, name)
    if card is None:
        raise NotFound(f"the {name} model has no model card")
    return Response(card, media_type="text/markdown; charset=utf-8")


def _file(rt: RuntimeDep, name: ModelName) -> str:
    return str(getattr(rt.settings, f"{name}_checkpoint"))


def _card_path(rt: RuntimeDep, name: ModelName) -> Path:
    return resolve_inside(rt.settings.checkpoints_dir, Path(_file(rt, name)).stem + ".md")


def _card(rt: RuntimeDep, name: ModelName) -> str | None:
    path = _card_path(rt, name)
    if not path.is_file():
        return None
    return path.read_bytes()[:CARD_MAX_BYTES].decode("utf-8", errors="replace")


def _info(rt: RuntimeDep, name: ModelName) -> dict[str, Any]:
    model = getattr(rt.models, name)
    info: dict[str, Any] = {"name": name, "file": _file(rt, name), "loaded": model is not None,
                            "error": rt.models.errors.get(name), "has_card": _card_path(rt, name).is_file()}
    if model is not None:
        net = model.model
        info["parameters"] = sum(p.numel() for p in net.parameters())
        info["config"] = {k: v for k, v in asdict(net.config).items() if isinstance(v, int | float | str | bool)}
    return info
