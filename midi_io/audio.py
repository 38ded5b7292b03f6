"""MIDI -> audio (WAV, FLAC, Ogg Vorbis) through the ``fluidsynth`` program and a General MIDI SoundFont.

The one place the CLI (``perfrnn render``, ``perfrnn generate -o out.wav``) and the service (``POST
/api/music/render`` with ``format``) synthesize audio. FluidSynth runs as a child process (``fluidsynth -F``,
its fast file renderer, which writes every format through libsndfile): no Python binding to install, a hung
or crashing synthesis can be bounded by a timeout and killed, and it renders about 85x faster than real time
with FluidR3_GM on one core. FluidSynth's exit status is 0 even when it cannot read the SoundFont or the
output type, so the inputs are checked first and the output is checked after.

Without FluidSynth or a SoundFont, ``AudioUnavailable`` says how to install them; nothing else in the package
needs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from midi_io.errors import AudioRenderError, AudioUnavailable
from midi_io.output import output_format, write_with

AUDIO_FORMATS = ("wav", "flac", "ogg")
MEDIA_TYPES = {"mid": "audio/midi", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}
# fluidsynth -T (libsndfile container) and -O (sample format; Vorbis has none) per format, and the file's magic
_FLUID_TYPE = {"wav": ("wav", "s16"), "flac": ("flac", "s16"), "ogg": ("oga", None)}
_MAGIC = {"wav": b"RIFF", "flac": b"fLaC", "ogg": b"OggS"}

SOUNDFONT_ENV = "PERFRNN_SOUNDFONT"
# searched in order when neither --soundfont nor PERFRNN_SOUNDFONT names one
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/default-GM.sf2",  # Debian/Ubuntu: the alternatives link to the installed GM font
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu: fluid-soundfont-gm (MIT)
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # Debian/Ubuntu: timgm6mb-soundfont (GPL-2, 6 MB)
    "/usr/share/soundfonts/default.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
INSTALL_HINT = ("install FluidSynth and a General MIDI SoundFont: 'apt-get install fluidsynth fluid-soundfont-gm' "
                "(Debian/Ubuntu), 'dnf install fluidsynth fluid-soundfont-gm' (Fedora), 'brew install fluid-synth' "
                f"and any GM .sf2 file (macOS; pass it with --soundfont or {SOUNDFONT_ENV})")


@dataclass(frozen=True)
class AudioConfig:
    """How to synthesize. ``soundfont`` None: ``$PERFRNN_SOUNDFONT``, then the standard locations."""

    soundfont: str | None = None
    sample_rate: int = 44100
    gain: float = 0.8  # FluidSynth's master gain (its default 0.2 leaves a solo piano near -40 dBFS RMS)
    reverb: bool = True
    chorus: bool = True
    program: str = "fluidsynth"
    timeout_s: float | None = None  # kill FluidSynth after this long (the service bounds every render)

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample rate must be in 8000..96000 Hz, got {self.sample_rate}")
        if not 0.0 < self.gain <= 10.0:
            raise ValueError(f"gain must be in (0, 10], got {self.gain:g}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


def find_program(config: AudioConfig = AudioConfig()) -> str:
    """The fluidsynth executable's path, or AudioUnavailable saying how to install it."""
    found = shutil.which(config.program)
    if found is None:
        raise AudioUnavailable(f"audio output needs FluidSynth ('{config.program}' is not on PATH): {INSTALL_HINT}")
    return found


def find_soundfont(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$PERFRNN_SOUNDFONT``, else the first SoundFont in ``SOUNDFONT_PATHS``."""
    if explicit:
        return check_soundfont(explicit)
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        return check_soundfont(env, what=SOUNDFONT_ENV)
    for candidate in SOUNDFONT_PATHS:
        try:
            return check_soundfont(candidate)
        except AudioUnavailable:
            continue
    raise AudioUnavailable(f"audio output needs a General MIDI SoundFont and none was found in "
                           f"{', '.join(SOUNDFONT_PATHS[:2])}, ...: {INSTALL_HINT}")


def check_soundfont(path: str | os.PathLike[str], what: str = "--soundfont") -> Path:
    """``path`` if it is a readable SoundFont 2/3 file (RIFF 'sfbk'); AudioUnavailable naming it otherwise."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise AudioUnavailable(f"{what} {p}: cannot read the SoundFont: {exc.strerror or exc}") from exc
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise AudioUnavailable(f"{what} {p}: not a SoundFont (.sf2/.sf3) file")
    return p


def unavailable_reason(config: AudioConfig = AudioConfig()) -> str | None:
    """Why audio cannot be rendered here (None when it can)."""
    try:
        find_program(config)
        find_soundfont(config.soundfont)
    except AudioUnavailable as exc:
        return str(exc)
    return None


def render_file(midi_path: str | os.PathLike[str], out_path: str | os.PathLike[str], fmt: str,
                config: AudioConfig = AudioConfig()) -> None:
    """Synthesize a Standard MIDI File into ``out_path`` (overwritten) as ``fmt`` ('wav', 'flac', 'ogg').

    Raises AudioUnavailable (no FluidSynth or SoundFont), AudioRenderError (FluidSynth failed or timed out),
    ValueError for an unknown format.
    """
    if fmt not in _FLUID_TYPE:
        raise ValueError(f"unknown audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}")
    program = find_program(config)
    soundfont = find_soundfont(config.soundfont)
    ftype, sample = _FLUID_TYPE[fmt]
    cmd = [program, "-n", "-i", "-q", "-o", "synth.lock-memory=0", "-R", "1" if config.reverb else "0",
           "-C", "1" if config.chorus else "0", "-g", f"{config.gain:g}", "-r", str(config.sample_rate),
           "-T", ftype, *(["-O", sample] if sample else []), "-F", os.fspath(out_path), os.fspath(soundfont),
           os.fspath(midi_path)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=config.timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioRenderError(f"FluidSynth did not finish within {config.timeout_s:g} s") from exc
    errors = [line.strip() for line in (proc.stdout + proc.stderr).decode("utf-8", "replace").splitlines()
              if "error" in line.lower() or "not a soundfont or midi file" in line.lower()]
    try:
        with open(out_path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if proc.returncode != 0 or errors or head != _MAGIC[fmt]:
        reason = errors[0] if errors else f"exit status {proc.returncode}, no {fmt} output"
        raise AudioRenderError(f"FluidSynth failed: {reason}")


def render_midi_bytes(midi: bytes, fmt: str, config: AudioConfig = AudioConfig()) -> bytes:
    """A Standard MIDI File's bytes -> the audio file's bytes (temporary files in a private directory)."""
    with tempfile.TemporaryDirectory(prefix="perfrnn-audio-") as folder:
        src = Path(folder) / "in.mid"
        out = Path(folder) / f"out.{fmt}"
        src.write_bytes(midi)
        render_file(src, out, fmt, config)
        return out.read_bytes()


def render_to_path(midi_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                   config: AudioConfig = AudioConfig(), *, force: bool = False, fmt: str | None = None) -> str:
    """Synthesize a MIDI file into ``out_path`` as ``fmt`` (default: by its extension), written safely
    (``midi_io.output``). Returns the format."""
    fmt = fmt or output_format(out_path, AUDIO_FORMATS, "audio")
    if fmt not in AUDIO_FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}")
    find_program(config)
    find_soundfont(config.soundfont)  # both checked before the output file is touched
    write_with(out_path, lambda tmp: render_file(midi_path, tmp, fmt, config), force=force)
    return fmt


def synthesize_notes_file(midi_bytes: bytes, out_path: str | os.PathLike[str], config: AudioConfig = AudioConfig(),
                          *, force: bool = False, fmt: str | None = None) -> str:
    """``render_to_path`` for MIDI bytes in memory (``perfrnn generate -o out.wav``)."""
    with tempfile.TemporaryDirectory(prefix="perfrnn-audio-") as folder:
        src = Path(folder) / "in.mid"
        src.write_bytes(midi_bytes)
        return render_to_path(src, out_path, config, force=force, fmt=fmt)
