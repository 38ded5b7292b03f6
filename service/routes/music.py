"""Music renders: a .mid download (JSON or multipart with a primer upload), the same as JSON events, and
notes -> .mid (the web page's download of what it played). A render uses the music model its ``model`` names
(GET /api/models), the default one without it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from midi_io.files import notes_to_midi_bytes
from midi_io.notes import Note
from service.deps import ClientGoneDep, RuntimeDep
from service.errors import InvalidRequest
from service.schemas import Events, NoteModel, NotesIn, RenderForm, RenderRequest, error_responses
from service.sessions import render

router = APIRouter(prefix="/music", tags=["music"])

MIDI = "audio/midi"
ERRORS = error_responses(400, 413, 422, 429, 503)
MIDI_OUT: dict[int | str, dict[str, Any]] = {200: {"content": {MIDI: {}}, "description": "a Standard MIDI File"}}


@router.post("/render", response_class=Response, responses={**MIDI_OUT, **ERRORS})
def render_midi(body: RenderRequest, rt: RuntimeDep, gone: ClientGoneDep) -> Response:
    """Render music (optionally after a chord of primer pitches) to a .mid file."""
    notes = _render(rt, body, body.primer(), gone)
    return midi_response(notes, f"performance-{body.seed}.mid")


@router.post("/render/upload", response_class=Response, responses={**MIDI_OUT, **ERRORS})
def render_upload(form: Annotated[RenderForm, Form()], primer: Annotated[UploadFile, File(description="a .mid")],
                  rt: RuntimeDep, gone: ClientGoneDep) -> Response:
    """Continue an uploaded .mid and return the result as a .mid file. The primer is the upload's last
    ``max_primer_seconds`` (30 s by default), and of those its last ``max_primer_notes`` notes (2,000)."""
    req = form.request()
    rt.music(req.model)  # an unknown or missing model is refused before the upload is parsed
    _check_seconds(rt, req)
    with rt.renders.take():  # parsing is work too: only with a render slot (in a worker process, time-limited)
        notes = rt.parser.parse(primer.file.read(), primer.filename or "upload.mid")
        return midi_response(_render_in_slot(rt, req, notes, gone), f"performance-{req.seed}.mid")


@router.post("/events", responses=ERRORS)
def render_events(body: RenderRequest, rt: RuntimeDep, gone: ClientGoneDep) -> Events:
    """Render music and return its notes as JSON (seconds from the start)."""
    music = rt.music(body.model)
    notes = _render(rt, body, body.primer(), gone)
    return Events(seconds=body.seconds, seed=body.seed, model=music.name, notes=[NoteModel.of(n) for n in notes])


@router.post("/midi", response_class=Response, responses={**MIDI_OUT, **error_responses(400, 413, 422)})
def notes_to_midi(body: NotesIn) -> Response:
    """Write the given notes to a .mid file (e.g. what a live stream played)."""
    return midi_response([n.note() for n in body.notes], "played.mid")


def midi_response(notes: Sequence[Note], filename: str) -> Response:
    return Response(notes_to_midi_bytes(notes), media_type=MIDI,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _render(rt: RuntimeDep, req: RenderRequest, primer: list[Note] | None, gone: threading.Event) -> list[Note]:
    rt.music(req.model)
    _check_seconds(rt, req)
    with rt.renders.take():
        return _render_in_slot(rt, req, primer, gone)


def _check_seconds(rt: RuntimeDep, req: RenderRequest) -> None:
    limit = rt.settings.max_render_seconds
    if req.seconds > limit:
        raise InvalidRequest(f"seconds must be <= {limit:g} on this server, got {req.seconds:g}")


def _render_in_slot(rt: RuntimeDep, req: RenderRequest, primer: list[Note] | None,
                    gone: threading.Event) -> list[Note]:
    """The render; a client that disconnects stops it (its engine stream is closed at once)."""
    return render(rt.music(req.model), req, primer, timeout_s=rt.settings.render_timeout_s, cancelled=gone.is_set)
