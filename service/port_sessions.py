"""Server-side sessions playing a music model into MIDI ports (``/api/sessions``), each a ``LivePlayback`` on one
shared ``PlayerHub``, guarded by a token only its creator holds."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from midi_io.player import Player, PlayerConfig, PlayerHub
from midi_io.ports import OutputPort
from performance_rnn.config import SamplingConfig
from service.errors import Forbidden, InvalidRequest, NotFound, Overloaded, Unauthorized
from service.playback import LivePlayback
from service.schemas import SessionCreate, SessionInfo, SessionUpdate
from service.streams import MusicBackend, control_vector_for, music_spec

log = logging.getLogger(__name__)

PortOpener = Callable[[str, str | None], OutputPort]  # (port name, rtmidi api) -> an open output


@dataclass
class PortSession:
    id: str
    token_digest: bytes
    request: SessionCreate
    music: MusicBackend  # the model it plays, on that model's engine
    api: str
    port: OutputPort
    player: Player
    playback: LivePlayback
    sampling: SamplingConfig
    density: float | None
    key: str | None
    touched_at: float
    paused: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class PortSessions:
    """Server-side sessions playing into MIDI ports. Only the holder of a session's token may change or stop
    it; a session its owner stops touching (``lease_s``) or that reaches its length is stopped, all notes off.
    ``limit`` counts the sessions of every model."""

    def __init__(self, *, limit: int, lease_s: float, lookahead_s: float, max_seconds: float,
                 default_api: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.lease_s, self.lookahead_s, self.max_seconds = limit, lease_s, lookahead_s, max_seconds
        self.default_api = default_api
        self.clock = clock
        self._sessions: dict[str, PortSession] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.hub = PlayerHub()  # one emitting thread for every session's player
        self._reaper = threading.Thread(target=self._reap_loop, name="port-sessions", daemon=True)

    def start(self) -> PortSessions:
        self.hub.start()
        self._reaper.start()
        return self

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, req: SessionCreate, open_port: PortOpener, music: MusicBackend) -> tuple[PortSession, str]:
        """Open the port and start playing ``music``; returns the session and its token (only its digest is
        kept)."""
        with self._lock:
            if len(self._sessions) >= self.limit:
                raise Overloaded(f"all {self.limit} port sessions are in use: try again later")
            if any(s.request.port_name == req.port_name for s in self._sessions.values()):
                raise InvalidRequest(f"a session already plays into {req.port_name!r}: choose another port_name")
            sid = secrets.token_hex(8)
            self._sessions[sid] = None  # type: ignore[assignment]  # reserve the slot while the port opens
        try:
            session, token = self._open(sid, req, open_port, music)
        except BaseException:
            with self._lock:
                self._sessions.pop(sid, None)
            raise
        with self._lock:
            self._sessions[sid] = session
        return session, token

    def _open(self, sid: str, req: SessionCreate, open_port: PortOpener,
              music: MusicBackend) -> tuple[PortSession, str]:
        max_s = min(req.max_seconds or self.max_seconds, self.max_seconds)
        spec = music_spec(music.model, seed=req.seed, sampling=req.sampling(), primer=req.primer(),
                          density=req.density, key=req.key, lookahead_s=self.lookahead_s, max_seconds=max_s)
        api = req.api or self.default_api
        port = open_port(req.port_name, api)
        channel = req.channel - 1  # the API numbers channels 1..16, mido 0..15
        player = Player(port, PlayerConfig(channel=channel), hub=self.hub)
        try:
            stream = music.engine.open(spec)
            playback = LivePlayback(stream, player, music.model.codec, channel=channel).start()
        except BaseException:
            player.stop()
            port.close()
            raise
        token = secrets.token_urlsafe(24)
        return PortSession(sid, _digest(token), req, music, api or "default", port, player, playback, req.sampling(),
                           req.density, req.key, self.clock()), token

    def list(self) -> list[PortSession]:
        with self._lock:
            return [s for s in self._sessions.values() if s is not None]

    def get(self, sid: str) -> PortSession:
        with self._lock:
            session = self._sessions.get(sid)
        if session is None:
            raise NotFound(f"no port session {sid!r}")
        return session

    def authorize(self, sid: str, token: str | None) -> PortSession:
        """The session, if ``token`` is its token; renews its lease. Raises NotFound, Unauthorized, Forbidden."""
        session = self.get(sid)
        if not token:
            raise Unauthorized("this needs the session's token: Authorization: Bearer <token>")
        if not hmac.compare_digest(_digest(token), session.token_digest):
            raise Forbidden("the token does not match this session")
        session.touched_at = self.clock()
        return session

    def update(self, session: PortSession, change: SessionUpdate) -> None:
        """Apply the fields sent: sampling, controls (null removes one), pause."""
        sent = change.model_fields_set
        with session.lock:
            if sent & {"temperature", "top_k", "top_p"}:
                s = session.sampling
                session.sampling = SamplingConfig(
                    s.temperature if change.temperature is None else change.temperature,
                    change.top_k if "top_k" in sent else s.top_k, change.top_p if "top_p" in sent else s.top_p)
                session.playback.stream.set_sampling(session.sampling)
            if sent & {"density", "key"}:
                density = change.density if "density" in sent else session.density
                key = change.key if "key" in sent else session.key
                session.playback.stream.set_controls(control_vector_for(session.music.model, density, key))
                session.density, session.key = density, key
            if change.paused is not None and change.paused != session.paused:
                (session.playback.pause if change.paused else session.playback.resume)()
                session.paused = change.paused

    def stop(self, session: PortSession) -> None:
        """Stop playing (every sounding note gets its note-off), close the port, forget the session."""
        with self._lock:
            if self._sessions.get(session.id) is not session:
                return
            del self._sessions[session.id]
        session.playback.stop()
        session.port.close()
        log.info("port session %s on %r stopped", session.id, session.request.port_name)

    def info(self, session: PortSession) -> SessionInfo:
        return SessionInfo(id=session.id, model=session.music.name, port_name=session.request.port_name,
                           api=session.api, channel=session.request.channel, temperature=session.sampling.temperature,
                           top_k=session.sampling.top_k, top_p=session.sampling.top_p, density=session.density,
                           key=session.key, paused=session.paused, music_s=round(session.playback.stream.music_s, 3),
                           expires_in_s=round(max(0.0, session.touched_at + self.lease_s - self.clock()), 3))

    def reap(self) -> None:
        """Stop sessions whose lease ran out, and those whose music ended once their last notes are sent."""
        now = self.clock()
        for session in self.list():
            if now - session.touched_at > self.lease_s:
                log.info("port session %s: lease expired", session.id)
                self.stop(session)
            elif _finished(session):
                self.stop(session)

    def _reap_loop(self) -> None:
        while not self._closed.wait(min(0.5, self.lease_s / 4)):
            try:
                self.reap()
            except Exception:  # keep reaping whatever one session did
                log.exception("reaping port sessions failed")

    def close(self) -> None:
        self._closed.set()
        for session in self.list():
            self.stop(session)
        if self._reaper.is_alive():
            self._reaper.join(timeout=2)
        self.hub.close()


def _finished(session: PortSession) -> bool:
    """The music ended (or the port failed) and the player has sent everything it will send."""
    if not session.playback.done.is_set():
        return False
    try:
        return session.player.wait_idle(timeout_s=0)
    except Exception:  # noqa: BLE001 - the port failed: nothing more will be sent
        return True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
