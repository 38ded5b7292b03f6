"""C parts compiled on first use: a source file next to its Python module, built with the system's C compiler
(``$CC``, else ``cc`` or ``gcc``) into a shared library cached under ``$PERFRNN_CACHE`` (default
``~/.cache/perfrnn``), named by the hash of the source and the command, and written atomically.

Used by ``midi_io.jack_timed`` (the frame-accurate JACK port) and ``performance_rnn.heads.fast_sample`` (the
sampler's one-pass kernel). Each caller says what its library is for, remembers a failure for the process and
falls back to a path without C.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class NativeBuildError(Exception):
    """No C compiler, or the build failed (the message says which, with the compiler's last words)."""


def cache_dir() -> Path:
    return Path(os.environ.get("PERFRNN_CACHE") or Path.home() / ".cache" / "perfrnn")


def build(source: Path, flags: Sequence[str], libs: Sequence[str] = ()) -> Path:
    """The shared library built from ``source`` with ``flags`` (and ``libs`` after the source), building it when
    it is not cached yet.

    Raises:
        NativeBuildError: no C compiler, the compiler failed, or the source or the cache folder cannot be used
            (a read-only home, say).
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which(cc) is None:
        raise NativeBuildError("no C compiler (cc) found")
    try:
        return _build(cc, source, flags, libs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeBuildError(f"{type(exc).__name__}: {exc}") from None


def _build(cc: str, source: Path, flags: Sequence[str], libs: Sequence[str]) -> Path:
    key = hashlib.sha256(source.read_bytes() + " ".join([*flags, *libs]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{source.stem}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{source.stem}-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([cc, *flags, "-o", tmp, str(source), *libs], capture_output=True, text=True,
                              check=False, timeout=120)
        if done.returncode != 0:
            raise NativeBuildError(done.stderr.strip()[-400:] or f"{cc} exited with {done.returncode}")
        os.replace(tmp, target)  # atomic: a concurrent build or reader never sees half a library
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
