"""midi_io.output: the shared safe-write helper behind every ``-o`` (generate, render, strokes)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from midi_io import output
from midi_io.output import OutputRefused, atomic_output, check_output, output_format, write_bytes, write_with


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_new_file_is_written_whole_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.mid"
    write_bytes(target, b"MThd....")
    assert target.read_bytes() == b"MThd...."
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert _leftovers(tmp_path) == []


def test_existing_regular_file_is_replaced_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.mid"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize(("name", "fmt"), [("x.mid", "mid"), ("X.WAV", "wav"), ("a.b.flac", "flac")])
def test_format_by_extension(name: str, fmt: str) -> None:
    assert output_format(name, ("mid", "wav", "flac", "ogg")) == fmt


@pytest.mark.parametrize(("name", "message"), [("a.xyz", "unknown output extension '.xyz'"),
                                               ("noext", "needs an extension")])
def test_unknown_or_missing_extension_is_refused_and_nothing_is_written(tmp_path: Path, name: str,
                                                                        message: str) -> None:
    with pytest.raises(OutputRefused, match=message) as info:
        write_bytes(tmp_path / name, b"data", formats=("mid", "wav"))
    assert ".mid, .wav" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_directory_is_refused_even_with_force(tmp_path: Path) -> None:
    for force in (False, True):
        with pytest.raises(OutputRefused, match="is a directory"):
            write_bytes(tmp_path, b"data", force=force)
    assert list(tmp_path.iterdir()) == []


def test_symlink_is_refused_then_followed_with_force(tmp_path: Path) -> None:
    real = tmp_path / "real.mid"
    real.write_bytes(b"old")
    link = tmp_path / "link.mid"
    link.symlink_to(real)
    with pytest.raises(OutputRefused, match="symbolic link"):
        write_bytes(link, b"new")
    assert real.read_bytes() == b"old" and link.is_symlink()
    write_bytes(link, b"new", force=True)
    assert link.is_symlink() and real.read_bytes() == b"new"  # the link stays, its target got the data
    assert _leftovers(tmp_path) == []


def test_dangling_symlink_with_force_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.mid"
    link.symlink_to(tmp_path / "missing.mid")
    with pytest.raises(OutputRefused):
        write_bytes(link, b"x")
    write_bytes(link, b"x", force=True)
    assert (tmp_path / "missing.mid").read_bytes() == b"x" and link.is_symlink()


def test_device_is_refused_then_written_into_with_force() -> None:
    before = os.stat("/dev/null")
    with pytest.raises(OutputRefused, match="not a regular file"):
        write_bytes("/dev/null", b"data")
    write_bytes("/dev/null", b"data", force=True)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev  # still the device, never replaced


def test_fifo_is_refused_without_force(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    with pytest.raises(OutputRefused, match="FIFO"):
        write_bytes(fifo, b"data")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _leftovers(tmp_path) == []


def test_full_disk_leaves_no_temp_file_and_the_old_file_intact(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.mid"
    target.write_bytes(b"old")
    written: list[int] = []

    def full_disk(fd: int, data: bytes) -> None:
        os.write(fd, bytes(data[:3]))  # part of it lands, then the disk is full
        written.append(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output, "_write_all", full_disk)
    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)) as info:
        write_bytes(target, b"new data")
    assert info.value.errno == errno.ENOSPC and written
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid"]


def test_a_failing_producer_leaves_nothing(tmp_path: Path) -> None:
    def produce(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("synthesizer crashed")

    with pytest.raises(RuntimeError):
        write_with(tmp_path / "a.wav", produce)
    assert list(tmp_path.iterdir()) == []


def test_temp_file_lives_beside_the_target_until_the_rename(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "a.mid") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.mid.") and tmp.exists()
        assert not (tmp_path / "a.mid").exists()  # readers never see a half-written target
        tmp.write_bytes(b"done")
    assert (tmp_path / "a.mid").read_bytes() == b"done" and _leftovers(tmp_path) == []


def test_missing_directory_is_a_clear_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        check_output(tmp_path / "nope" / "a.mid")
