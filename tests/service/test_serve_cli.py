"""service/cli/serve.py: settings from the environment, flags winning; bad settings are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import build_parser, main
from service.cli.serve import settings_from


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERFRNN_PORT", "9001")
    monkeypatch.setenv("PERFRNN_MAX_RENDERS", "5")
    args = build_parser("serve").parse_args(["serve", "--port", "9002", "--checkpoints-dir", str(tmp_path)])
    s = settings_from(args)
    assert (s.host, s.port, s.max_renders, s.checkpoints_dir) == ("127.0.0.1", 9002, 5, tmp_path.resolve())


def test_invalid_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err
    assert main(["serve", "--music-checkpoint", "../../etc/passwd"]) == 2


def test_music_checkpoint_may_be_repeated_or_comma_separated(tmp_path: Path) -> None:
    argv = ["serve", "--music-checkpoint", "a.pt,b.pt", "--music-checkpoint", "c.pt"]
    assert settings_from(build_parser("serve").parse_args(argv)).music_checkpoints == ["a.pt", "b.pt", "c.pt"]
    assert settings_from(build_parser("serve").parse_args(["serve"])).music_checkpoints == ["music.pt",
                                                                                           "music-scores.pt"]


def test_help_explains_several_music_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("serve").parse_args(["serve", "--help"])
    assert "repeat it" in " ".join(capsys.readouterr().out.split())


def test_allowed_hosts_and_origins_from_flags_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser("serve").parse_args(["serve", "--allowed-host", "studio.lan", "--allowed-host", "*.example",
                                             "--allowed-origin", "https://studio.example/"])
    s = settings_from(args)
    assert s.trusted_hosts == ["studio.lan", "*.example"] and s.allowed_origins == ["https://studio.example"]
    monkeypatch.setenv("PERFRNN_ALLOWED_HOSTS", '["box.local"]')
    assert settings_from(build_parser("serve").parse_args(["serve"])).trusted_hosts == ["box.local"]
    monkeypatch.delenv("PERFRNN_ALLOWED_HOSTS")
    assert settings_from(build_parser("serve").parse_args(["serve"])).trusted_hosts == ["127.0.0.1", "localhost", "::1"]
    assert main(["serve", "--allowed-host", "http://x:80"]) == 2  # a host name, not a URL
