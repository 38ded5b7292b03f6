"""Pydantic models for every request and response body, HTTP and WebSocket. Units are in the field names.

The bounds here are hard ceilings, published in the OpenAPI schema; ``Settings`` may set lower ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from midi_io.notes import Note
from performance_rnn.codecs.controls import DENSITY_HELP, DENSITY_MAX_NPS, DENSITY_MIN_NPS, KEY_HELP
from performance_rnn.config import SamplingConfig
from performance_rnn.tasks.music.generate import chord_primer, parse_key

MAX_SEED = 2**31 - 1
MAX_RENDER_SECONDS = 600.0
MAX_TEXT_CHARS = 5000
MAX_PRIME_CHARS = 1000
MAX_DRAWINGS = 32
MAX_PARTIAL_POINTS = 250
MAX_USER_STROKES = 64
MAX_PRIMER_NOTES = 2000
MAX_PRIMER_SPAN_S = 60.0
MAX_NOTES = 50_000
MAX_PIECE_SECONDS = 4 * 3600.0

Pitch = Annotated[int, Field(ge=0, le=127)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="the same seed gives the same music")]
Coordinate = Annotated[float, Field(ge=-1000.0, le=1000.0, allow_inf_nan=False)]
PortName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,47}$")]


class Strict(BaseModel):
    """JSON bodies: no unknown fields, and no coercion (``false`` is not a number, ``"3"`` not an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Error(BaseModel):
    detail: str | list[dict[str, Any]]


_STATUS_TEXT = {400: "The body is not readable JSON", 401: "The session's token is missing",
                403: "The token does not match", 404: "Not found", 413: "The request body is too large",
                406: "Audio was asked for and this server cannot synthesize it (no FluidSynth or SoundFont)",
                422: "Invalid parameters, or input the model cannot take", 429: "An admission limit is reached: retry",
                503: "The model is unavailable or the server is overloaded: retry"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all answered as ``Error``."""
    return {code: {"model": Error, "description": _STATUS_TEXT[code]} for code in codes}


class SamplingFields(Strict):
    temperature: float = Field(1.0, ge=0.0, le=10.0, description="logits / T; 0 = greedy")
    top_k: int | None = Field(None, ge=1, le=1000, description="keep the k most likely events")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus: smallest set reaching p")

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.temperature, self.top_k, self.top_p)


class ControlFields(Strict):
    density: float | None = Field(None, ge=DENSITY_MIN_NPS, le=DENSITY_MAX_NPS, description=DENSITY_HELP)
    key: str | None = Field(None, max_length=16, description=KEY_HELP)

    @field_validator("key")
    @classmethod
    def _known_key(cls, key: str | None) -> str | None:
        if key is not None:
            parse_key(key)  # ValueError -> 422 naming the accepted spellings
        return key


class PrimerFields(Strict):
    primer_pitches: list[Pitch] = Field([], max_length=16, description="prime with this chord held for 0.5 s")
    primer_notes: list[NoteModel] | None = Field(
        None, min_length=1, max_length=MAX_PRIMER_NOTES,
        description=f"prime with these notes instead (at most {MAX_PRIMER_SPAN_S:g} s from the first onset to the last "
                    "release; shifted to start at 0), e.g. what POST /api/music/primer read from a .mid")

    @field_validator("primer_notes")
    @classmethod
    def _short_primer(cls, notes: list[NoteModel] | None) -> list[NoteModel] | None:
        if notes:
            span = max(n.end_s for n in notes) - min(n.start_s for n in notes)
            if span > MAX_PRIMER_SPAN_S:
                raise ValueError(f"primer_notes span {span:.1f} s; at most {MAX_PRIMER_SPAN_S:g} s are taken")
        return notes

    def primer(self) -> list[Note] | None:
        if self.primer_notes:
            t0 = min(n.start_s for n in self.primer_notes)
            return sorted((Note(n.pitch, n.velocity, n.start_s - t0, n.end_s - t0) for n in self.primer_notes),
                          key=lambda n: (n.start_s, n.pitch))
        return chord_primer(sorted(set(self.primer_pitches))) if self.primer_pitches else None


class ModelFields(Strict):
    model: str | None = Field(None, min_length=1, max_length=128,
                              description="a music model's name (GET /api/models); default: the first loaded")


class RenderRequest(SamplingFields, ControlFields, PrimerFields, ModelFields):
    seconds: float = Field(10.0, gt=0.0, le=MAX_RENDER_SECONDS, description="seconds of music after the primer")
    seed: Seed = 0
    include_primer: bool = Field(False, description="start the output with the primer")


OutputFormat = Literal["mid", "wav", "flac", "ogg"]
FORMAT_DESCRIPTION = ("what to answer: a MIDI file (mid) or audio synthesized from it with FluidSynth and a General "
                      "MIDI SoundFont (wav: 16-bit PCM, flac, ogg: Vorbis; 44.1 kHz stereo). Default: the Accept "
                      "header's choice (audio/wav, audio/flac, audio/ogg), else mid")


class AudioRenderRequest(RenderRequest):
    """A render that may answer audio instead of MIDI."""

    format: OutputFormat | None = Field(None, description=FORMAT_DESCRIPTION)


class RenderForm(SamplingFields, ControlFields, ModelFields):
    """The multipart variant's form fields (the primer comes as a .mid file instead of pitches)."""

    model_config = ConfigDict(extra="ignore", strict=False)  # form values are strings; the file sits beside them
    seconds: float = Field(10.0, gt=0.0, le=MAX_RENDER_SECONDS, description="seconds of music after the primer")
    seed: Seed = 0
    include_primer: bool = Field(False, description="start the output with the primer")
    format: OutputFormat | None = Field(None, description=FORMAT_DESCRIPTION)

    def request(self) -> RenderRequest:
        return RenderRequest(**self.model_dump(exclude={"format"}))


class NoteModel(Strict):
    pitch: Pitch
    velocity: int = Field(ge=1, le=127)
    start_s: float = Field(ge=0.0, le=MAX_PIECE_SECONDS)
    end_s: float = Field(ge=0.0, le=MAX_PIECE_SECONDS)

    @model_validator(mode="after")
    def _ordered(self) -> NoteModel:
        if self.end_s < self.start_s:
            raise ValueError("end_s must be >= start_s")
        return self

    @staticmethod
    def of(n: Note) -> NoteModel:
        return NoteModel(pitch=n.pitch, velocity=n.velocity, start_s=round(n.start_s, 4), end_s=round(n.end_s, 4))

    def note(self) -> Note:
        return Note(self.pitch, self.velocity, self.start_s, self.end_s)


class Events(BaseModel):
    seconds: float
    seed: int
    model: str  # the music model that rendered them
    notes: list[NoteModel]


class NotesIn(Strict):
    notes: list[NoteModel] = Field(max_length=MAX_NOTES)


class TextRequest(SamplingFields):
    prime: str = Field("", max_length=MAX_PRIME_CHARS, description="text to continue (not repeated in the answer)")
    length: int = Field(300, ge=0, le=MAX_TEXT_CHARS, description="characters to generate")
    temperature: float = Field(0.8, ge=0.0, le=10.0, description="logits / T; 0 = greedy")
    seed: Seed = 0


class TextOut(BaseModel):
    prime: str
    text: str


class StrokesRequest(Strict):
    n: int = Field(8, ge=1, le=MAX_DRAWINGS, description="drawings; drawing i uses seed + i")
    temperature: float = Field(0.4, ge=0.0, le=2.0, description="0 = the mode; about 0.4 draws neatly")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED - MAX_DRAWINGS)] = 0
    partial: list[Annotated[list[Coordinate], Field(min_length=3, max_length=3)]] | None = Field(
        None, min_length=1, max_length=MAX_PARTIAL_POINTS,
        description="a stroke-3 drawing [[dx, dy, pen_lifted], ...] (KanjiVG units) that every sample continues")


Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2, description="[x, y]")]


class StrokesContinueRequest(Strict):
    """A drawing as absolute pen strokes, for the model to continue (POST /api/strokes/continue)."""

    strokes: list[Annotated[list[Point], Field(min_length=1, max_length=MAX_PARTIAL_POINTS)]] = Field(
        min_length=1, max_length=MAX_USER_STROKES,
        description="each stroke a polyline of absolute [x, y] points in KanjiVG units (109 x 109 canvas, y down); "
                    f"at most {MAX_PARTIAL_POINTS} points in all")
    pen_down: bool = Field(True, description="the pen is still on the paper at the last point: the model may "
                                             "continue the last stroke (false: it starts a new one)")
    temperature: float = Field(0.4, ge=0.0, le=2.0, description="0 = the mode; about 0.4 draws neatly")
    seed: Seed = 0
    max_points: int = Field(MAX_PARTIAL_POINTS, ge=1, le=MAX_PARTIAL_POINTS, description="points to add at most")

    @field_validator("strokes")
    @classmethod
    def _total_points(cls, strokes: list[list[list[float]]]) -> list[list[list[float]]]:
        total = sum(len(s) for s in strokes)
        if total > MAX_PARTIAL_POINTS:
            raise ValueError(f"{total} points in all; at most {MAX_PARTIAL_POINTS} are taken")
        return strokes

    def stroke3(self) -> list[list[float]]:
        """The drawing as stroke-3 rows: the first from the canvas' top-left corner, pen lifted after each
        stroke (after the last one only when ``pen_down`` is false)."""
        rows, x, y = [], 0.0, 0.0
        for i, stroke in enumerate(self.strokes):
            for j, (px, py) in enumerate(stroke):
                last = j == len(stroke) - 1 and (i < len(self.strokes) - 1 or not self.pen_down)
                rows.append([px - x, py - y, 1.0 if last else 0.0])
                x, y = px, py
        return rows


class StrokesSvgRequest(StrokesRequest):
    cols: int = Field(4, ge=1, le=MAX_DRAWINGS)
    fit: bool = Field(False, description="fit each drawing to its cell instead of the 109-unit canvas")


class StrokesOut(BaseModel):
    canvas: float  # the drawings' square, in the same units
    drawings: list[list[list[float]]]  # per drawing, stroke-3 rows [dx, dy, pen_lifted (0 or 1)]


ModelKind = Literal["music", "text", "strokes"]


class ModelInfo(BaseModel):
    name: str  # a music model's is its checkpoint's stem (pass it as ``model`` in music requests)
    kind: ModelKind
    default: bool  # the music model that music requests without ``model`` use
    file: str  # checkpoint file name inside the checkpoints folder
    loaded: bool
    error: str | None = None  # why it is not loaded
    parameters: int | None = None
    config: dict[str, int | float | str | bool] = {}
    has_card: bool


class ModelDetail(ModelInfo):
    card: str | None = None  # the model card, Markdown


class Health(BaseModel):
    status: Literal["ok", "degraded"]  # degraded: the default music model is not loaded, or an engine is down
    models: dict[str, bool]  # every model by name: loaded or not
    engines: dict[str, bool] = {}  # each loaded music model's engine: running or not
    engine_streams: int
    engine_capacity: int
    live_streams: int
    port_sessions: int


class SessionCreate(SamplingFields, ControlFields, PrimerFields, ModelFields):
    port_name: PortName = "Performance RNN"
    api: Literal["jack", "alsa", "coremidi"] | None = Field(None, description="rtmidi API; default: the server's")
    channel: int = Field(1, ge=1, le=16, description="MIDI channel 1..16, numbered as DAWs show them")
    seed: Seed = 0
    max_seconds: float | None = Field(None, gt=0.0, le=24 * 3600.0, description="end after this much music")


class SessionUpdate(SamplingFields, ControlFields):
    """Only the fields sent change; ``density``/``key`` sent as null remove that control."""

    temperature: float | None = Field(None, ge=0.0, le=10.0)  # type: ignore[assignment]
    paused: bool | None = None


class SessionInfo(BaseModel):
    id: str
    model: str  # the music model it plays
    port_name: str
    api: str
    channel: int  # 1..16, as DAWs number them
    temperature: float
    top_k: int | None
    top_p: float | None
    density: float | None
    key: str | None
    paused: bool
    music_s: float  # music played so far
    expires_in_s: float  # stopped if its owner does not touch it before then


class SessionCreated(SessionInfo):
    token: str  # send as "Authorization: Bearer <token>" to change or stop this session; shown once


# ---- WebSocket messages (JSON text frames) ----
class LiveStart(SamplingFields, ControlFields, PrimerFields, ModelFields):
    """The first client message on /api/live."""

    type: Literal["start"]
    seed: Seed = 0
    max_seconds: float | None = Field(None, gt=0.0, le=24 * 3600.0, description="end after this much music")


class LiveControl(SamplingFields, ControlFields):
    """Change the stream: only the fields sent change; ``density``/``key`` as null remove that control."""

    type: Literal["control"]
    temperature: float | None = Field(None, ge=0.0, le=10.0)  # type: ignore[assignment]


class LiveCommand(Strict):
    type: Literal["pause", "resume", "stop"]


class LiveNote(BaseModel):
    """One note-on/off: ``t`` is music time, ``at`` the wall-clock due time (pauses added), both in seconds
    from the stream's start."""

    type: Literal["note"] = "note"
    t: float
    at: float
    on: bool
    pitch: int
    velocity: int
