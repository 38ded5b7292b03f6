"""Safe file output for every ``-o``: the format by extension, and a file that appears whole or not at all.

``atomic_output(path)`` yields a fresh temporary path in the target's own directory; when the block ends
without error the temporary file is flushed to disk and renamed over the target (``os.replace``: a reader sees
the old file or the new one, never a torn one); on any error it is removed. Existing targets that are not
regular files are refused unless ``force``:

- a directory: always refused;
- a device, FIFO or socket (``-o /dev/null``): refused; with ``force`` the output is written *into* it (the
  device stays a device: it is opened for writing, never created, truncated or replaced);
- a symbolic link: refused; with ``force`` the link is followed and the file it points to is written as above
  (the link itself stays).

Standard library only, so every package may import it (``performance_rnn`` uses it for strokes SVG/PNG).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["OutputRefused", "atomic_output", "check_output", "output_format", "write_bytes", "write_with"]


class OutputRefused(ValueError):
    """The output path is refused before anything is written: unknown extension, a directory, or a device,
    FIFO, socket or symbolic link without ``force``. (A usage error: the CLI exits with status 2.)"""


def output_format(path: str | os.PathLike[str], formats: Collection[str], what: str = "output",
                  default: str | None = None) -> str:
    """The format a path asks for by its extension (``out.WAV`` -> ``"wav"``), one of ``formats``
    (extensions without the dot); ``default`` for a path without one (e.g. a device written with ``force``);
    OutputRefused naming the accepted ones otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in formats:
        return suffix
    if not suffix and default is not None:
        return default
    accepted = ", ".join(f".{f}" for f in formats)
    if not suffix:
        raise OutputRefused(f"{path}: the {what} file needs an extension that names its format: {accepted}")
    raise OutputRefused(f"{path}: unknown {what} extension '.{suffix}': use {accepted}")


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, bool]:
    """Where the output really goes and whether it is a special file (device/FIFO/socket) to write into.

    Raises OutputRefused for a directory, or for a symlink or special file without ``force``; OSError when the
    target's directory does not exist.
    """
    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        _check_parent(target)
        return target, False
    if stat.S_ISLNK(st.st_mode):
        if not force:
            raise OutputRefused(f"{target} is a symbolic link: refusing to replace it (--force writes to the file "
                                "it points to)")
        real = Path(os.path.realpath(target))
        if real == target or os.path.islink(real):  # a loop the kernel cannot resolve
            raise OutputRefused(f"{target} is a symbolic link that does not resolve")
        return check_output(real, force=True)
    if stat.S_ISDIR(st.st_mode):
        raise OutputRefused(f"{target} is a directory: give a file name")
    if stat.S_ISREG(st.st_mode):
        return target, False
    if not force:
        raise OutputRefused(f"{target} exists and is not a regular file (a device, FIFO or socket): refusing to "
                            "write to it (--force writes into it)")
    return target, True


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False,
                  formats: Collection[str] | None = None) -> Iterator[Path]:
    """Yield a temporary path to write the output into; it becomes ``path`` when the block succeeds.

    ``formats`` (extensions without the dot) refuses any other extension first. The temporary file exists
    (empty) when yielded, in the target's directory (for a special file with ``force``: in the system's temp
    directory, then copied into the device). Nothing is left behind on any error, a full disk included.
    """
    target, special = check_output(path, force=force)
    if formats is not None:
        output_format(path, formats)
    tmp = _create_temp(Path(tempfile.gettempdir()) if special else target.parent, target.name)
    try:
        yield tmp
        if special:
            _copy_into(tmp, target)
        else:
            _fsync(tmp)
            with suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # replacing keeps the old file's mode
            os.replace(tmp, target)
            _fsync_dir(target.parent)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, force: bool = False,
                formats: Collection[str] | None = None) -> None:
    """Write ``data`` to ``path`` through ``atomic_output``."""
    with atomic_output(path, force=force, formats=formats) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)


def write_with(path: str | os.PathLike[str], produce: Callable[[Path], object], *, force: bool = False,
               formats: Collection[str] | None = None) -> None:
    """Let ``produce(tmp_path)`` write the output file (e.g. a subprocess), then put it in place."""
    with atomic_output(path, force=force, formats=formats) as tmp:
        produce(tmp)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _create_temp(folder: Path, name: str) -> Path:
    """A new empty file ``.NAME.RANDOM.tmp`` in ``folder``, created exclusively with mode 0666 & ~umask (the
    mode an ordinary new file gets), never following a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f".{name[:200]}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _check_parent(target: Path) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the output's directory does not exist", str(parent))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform or file system lets a directory be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_into(tmp: Path, target: Path) -> None:
    """Write the finished output into a device or FIFO: opened for writing only (never created or truncated)."""
    fd = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    with open(tmp, "rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst)
