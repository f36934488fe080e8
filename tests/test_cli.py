"""The ``lowlight`` console command's frame: help, version, usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lowlight import __version__
from lowlight.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"lowlight {__version__}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "Enhance Low Light" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: lowlight" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_console_script_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lowlight", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout
