"""Service errors, and the one place that maps every domain error to an HTTP status.

Routes and sessions raise domain errors (``MidiDecodeError``, ``CodecError``, ``EngineBusy``...) or the few
service errors below; ``install_error_handlers`` turns each into ``{"detail": "..."}`` with its status.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from midi_io.errors import AudioRenderError, AudioUnavailable, MidiDecodeError, PortUnavailableError
from performance_rnn.engine import EngineBusy, StreamFailed
from performance_rnn.errors import CheckpointError, CodecError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1  # what 429 and 503 answers suggest


class ServiceError(Exception):
    """Base for errors raised by the service layer itself."""


class InvalidRequest(ServiceError):
    """Well-formed but unusable parameters (density on an unconditioned model, over a configured limit)."""


class ModelUnavailable(ServiceError):
    """The model a request needs was not loaded (its checkpoint is missing or unreadable)."""


class Overloaded(ServiceError):
    """An admission limit is reached: try again later."""


class RenderTimeout(ServiceError):
    """A render did not finish in time."""


class ClientGone(ServiceError):
    """The client disconnected: its work was stopped (the answer reaches no one)."""


class NotFound(ServiceError):
    """No such model, card or session."""


class Unauthorized(ServiceError):
    """A session token is missing."""


class Forbidden(ServiceError):
    """A session token does not match."""


class BodyTooLarge(HTTPException):
    """The request body is over ``max_upload_bytes`` (an HTTPException so FastAPI's body parsing re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the {limit} bytes allowed")


STATUS: dict[type[Exception], int] = {
    InvalidRequest: 422,
    MidiDecodeError: 422,
    CodecError: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Overloaded: 429,
    AudioUnavailable: 406,  # audio asked for (format or Accept) on a server without FluidSynth or a SoundFont
    AudioRenderError: 503,  # FluidSynth failed or ran past the render timeout
    ModelUnavailable: 503,
    CheckpointError: 503,
    EngineBusy: 503,
    StreamFailed: 503,
    RenderTimeout: 503,
    ClientGone: 499,  # nginx's "client closed request": never seen by a client, only in the logs
    PortUnavailableError: 503,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status for a domain error (500 for anything unexpected)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _headers(status: int) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status in (429, 503):
        return {"Retry-After": str(RETRY_AFTER_S)}
    return None


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    log.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=_headers(status))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 without echoing the input back (an upload's bytes are neither JSON nor useful in the answer); a body
    that is not JSON at all is 400, as one too deeply nested to parse is."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the body is not readable JSON"}, status_code=400)
    return JSONResponse({"detail": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    for cls in STATUS:
        app.add_exception_handler(cls, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
