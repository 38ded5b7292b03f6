"""The first-use C builder: cached by source and command, atomic, one clear error when it cannot build."""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import pytest

from midi_io import native

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@needs_cc
def test_a_source_is_built_once_and_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERFRNN_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "twice.c"
    src.write_text("int twice(int x) { return 2 * x; }\n")
    lib = native.build(src, ["-O2", "-shared", "-fPIC"])
    assert lib.parent == tmp_path / "cache" and lib.name.startswith("twice-")
    assert ctypes.CDLL(str(lib)).twice(21) == 42
    stamp = lib.stat().st_mtime_ns
    assert native.build(src, ["-O2", "-shared", "-fPIC"]) == lib and lib.stat().st_mtime_ns == stamp  # cached
    assert native.build(src, ["-O1", "-shared", "-fPIC"]) != lib  # another command, another library
    src.write_text("int twice(int x) { return x + x; }\n")
    assert native.build(src, ["-O2", "-shared", "-fPIC"]) != lib  # another source too


def test_a_failed_build_is_one_clear_error_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PERFRNN_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "broken.c"
    src.write_text("this is not C\n")
    if shutil.which("cc") or shutil.which("gcc"):
        with pytest.raises(native.NativeBuildError, match="error"):
            native.build(src, ["-shared", "-fPIC"])
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.raises(native.NativeBuildError, match="no C compiler"):
        native.build(src, ["-shared", "-fPIC"])
    assert not any((tmp_path / "cache").glob("*"))  # no half-built library left behind


@needs_cc
def test_an_unusable_cache_folder_is_the_same_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("PERFRNN_CACHE", str(blocker / "cache"))  # cannot be created: its parent is a file
    src = tmp_path / "twice.c"
    src.write_text("int twice(int x) { return 2 * x; }\n")
    with pytest.raises(native.NativeBuildError, match="Error"):
        native.build(src, ["-shared", "-fPIC"])
    with pytest.raises(native.NativeBuildError, match="FileNotFoundError"):
        native.build(tmp_path / "missing.c", ["-shared", "-fPIC"])
