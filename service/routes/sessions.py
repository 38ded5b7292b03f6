"""Server-side port sessions: the server plays into a MIDI port (virtual, ALSA or JACK) of its own.

Creating one returns its token once; changing or stopping it needs ``Authorization: Bearer <token>``. Any
authorized call (an empty PATCH too) renews the session's lease; an abandoned session stops by itself. A session
plays the music model its ``model`` names (GET /api/models), the default one without it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.deps import PortOpenerDep, RuntimeDep, SessionsDep
from service.schemas import SessionCreate, SessionCreated, SessionInfo, SessionUpdate, error_responses

router = APIRouter(prefix="/sessions", tags=["port sessions"])

_bearer = HTTPBearer(auto_error=False, description="the token returned when the session was created")
TokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
SessionId = Annotated[str, Path(max_length=64)]
ERRORS = error_responses(400, 401, 403, 404, 413, 422, 503)


@router.post("", status_code=201, responses=error_responses(400, 413, 422, 429, 503))
def create_session(body: SessionCreate, rt: RuntimeDep, sessions: SessionsDep,
                   open_port: PortOpenerDep) -> SessionCreated:
    """Start playing into a new port; the answer holds the session's token (shown only here)."""
    session, token = sessions.create(body, open_port, rt.music(body.model))
    return SessionCreated(**sessions.info(session).model_dump(), token=token)


@router.get("")
def list_sessions(sessions: SessionsDep) -> list[SessionInfo]:
    """Every running session (without tokens)."""
    return [sessions.info(s) for s in sessions.list()]


@router.get("/{session_id}", responses=error_responses(404, 503))
def get_session(session_id: SessionId, sessions: SessionsDep) -> SessionInfo:
    """One session's state."""
    return sessions.info(sessions.get(session_id))


@router.patch("/{session_id}", responses=ERRORS)
def update_session(session_id: SessionId, body: SessionUpdate, sessions: SessionsDep, auth: TokenDep) -> SessionInfo:
    """Change temperature, top-k/top-p, density, key or pause; an empty body only renews the lease."""
    session = sessions.authorize(session_id, auth.credentials if auth else None)
    sessions.update(session, body)
    return sessions.info(session)


@router.delete("/{session_id}", status_code=204, response_class=Response, responses=ERRORS)
def stop_session(session_id: SessionId, sessions: SessionsDep, auth: TokenDep) -> Response:
    """Stop the session: every sounding note gets its note-off and the port closes."""
    sessions.stop(sessions.authorize(session_id, auth.credentials if auth else None))
    return Response(status_code=204)
