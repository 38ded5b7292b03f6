"""Music renders: a .mid download (JSON or multipart with a primer upload), the same as JSON events, and
notes -> .mid (the web page's download of what it played). A render uses the music model its ``model`` names
(GET /api/models), the default one without it.

A render answers audio (WAV, FLAC, Ogg Vorbis through ``midi_io.audio``) when its ``format`` field or, without
one, its ``Accept`` header asks for it. A server without FluidSynth or a SoundFont answers such a request 406
(before any music is generated), with the install command in ``detail``. Synthesis runs in the route's worker
thread (never on the event loop), holding a render slot, under the render timeout."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from midi_io.audio import AUDIO_FORMATS, MEDIA_TYPES, AudioConfig, find_program, find_soundfont, render_midi_bytes
from midi_io.files import notes_to_midi_bytes
from midi_io.notes import Note
from service.deps import ClientGoneDep, RuntimeDep
from service.errors import InvalidRequest
from service.render import render
from service.schemas import (
    AudioRenderRequest,
    Events,
    NoteModel,
    NotesIn,
    RenderForm,
    RenderRequest,
    error_responses,
)

router = APIRouter(prefix="/music", tags=["music"])

MIDI = "audio/midi"
ERRORS = error_responses(400, 413, 422, 429, 503)
MIDI_OUT: dict[int | str, dict[str, Any]] = {200: {"content": {MIDI: {}}, "description": "a Standard MIDI File"}}
MEDIA_OUT: dict[int | str, dict[str, Any]] = {
    200: {"content": {t: {} for t in MEDIA_TYPES.values()},
          "description": "a Standard MIDI File, or audio when the format field or Accept header asks for it"}}
RENDER_ERRORS = error_responses(400, 406, 413, 422, 429, 503)
# Accept media types -> format (the first listed with the highest q wins; anything else means MIDI)
ACCEPT_FORMATS = {"audio/midi": "mid", "audio/mid": "mid", "audio/x-midi": "mid", "audio/wav": "wav",
                  "audio/wave": "wav", "audio/x-wav": "wav", "audio/vnd.wave": "wav", "audio/flac": "flac",
                  "audio/x-flac": "flac", "audio/ogg": "ogg", "audio/vorbis": "ogg", "application/ogg": "ogg"}


@router.post("/render", response_class=Response, responses={**MEDIA_OUT, **RENDER_ERRORS})
def render_midi(body: AudioRenderRequest, rt: RuntimeDep, request: Request, gone: ClientGoneDep) -> Response:
    """Render music (optionally after a chord of primer pitches) to a .mid file, or to audio (``format``
    "wav"/"flac"/"ogg", or an ``Accept: audio/wav`` header; 406 when the server cannot synthesize audio)."""
    fmt = _format(rt, body.format, request)
    notes = _render(rt, body, body.primer(), gone)
    return media_response(rt, notes, fmt, body.seed, body.seconds)


@router.post("/render/upload", response_class=Response, responses={**MEDIA_OUT, **RENDER_ERRORS})
def render_upload(form: Annotated[RenderForm, Form()], primer: Annotated[UploadFile, File(description="a .mid")],
                  rt: RuntimeDep, request: Request, gone: ClientGoneDep) -> Response:
    """Continue an uploaded .mid and return the result as a .mid file (or audio, as ``/render``). The primer is
    the upload's last ``max_primer_seconds`` (30 s by default), and of those its last ``max_primer_notes`` notes
    (2,000)."""
    req = form.request()
    rt.music(req.model)  # an unknown or missing model is refused before the upload is parsed
    fmt = _format(rt, form.format, request)
    _check_seconds(rt, req)
    with rt.renders.take():  # parsing is work too: only with a render slot (in a worker process, time-limited)
        notes = rt.parser.parse(primer.file.read(), primer.filename or "upload.mid")
        rendered = _render_in_slot(rt, req, notes, gone)
    return media_response(rt, rendered, fmt, req.seed, req.seconds)


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


def media_response(rt: RuntimeDep, notes: Sequence[Note], fmt: str, seed: int, seconds: float) -> Response:
    """The render as MIDI, or synthesized to ``fmt`` (lasting at least ``seconds``, so trailing silence stays)."""
    if fmt == "mid":
        response = midi_response(notes, f"performance-{seed}.mid")
    else:
        end = max([n.end_s for n in notes] + [seconds])
        config = AudioConfig(timeout_s=rt.settings.render_timeout_s)
        with rt.renders.take():  # synthesis is bounded like the render itself
            audio = render_midi_bytes(notes_to_midi_bytes(notes, end_s=end), fmt, config)
        response = Response(audio, media_type=MEDIA_TYPES[fmt],
                            headers={"Content-Disposition": f'attachment; filename="performance-{seed}.{fmt}"'})
    response.headers["Vary"] = "Accept"
    return response


def accepted_format(accept: str | None) -> str:
    """The format an ``Accept`` header prefers among ``ACCEPT_FORMATS`` ("mid" when it names none of them)."""
    best, best_q = "mid", 0.0
    for part in (accept or "").split(",")[:32]:
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        fmt = ACCEPT_FORMATS.get(media.lower())
        if fmt is not None and q > best_q:
            best, best_q = fmt, q
    return best


def _format(rt: RuntimeDep, field: str | None, request: Request) -> str:
    """The answer's format (the field, else the Accept header); audio is checked to be possible up front."""
    fmt = field or accepted_format(request.headers.get("accept"))
    if fmt in AUDIO_FORMATS:
        config = AudioConfig(timeout_s=rt.settings.render_timeout_s)
        find_program(config)  # AudioUnavailable -> 406 before any music is generated
        find_soundfont(config.soundfont)
    return fmt


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
