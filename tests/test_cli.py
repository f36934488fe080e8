"""The ``lowlight`` console command's frame: help, version, usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``lowlight worker status | head -3``: no BrokenPipeError traceback when the reader
    leaves early (a command whose output is far longer than the pipe's buffer)."""
    script = tmp_path / "long.py"
    script.write_text(
        "import argparse, sys\n"
        "import lowlight.cli as cli\n"
        "def parser():\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.set_defaults(handler=lambda a: [print('line', i) for i in range(10**6)] and 0)\n"
        "    return p\n"
        "cli.build_parser = parser\n"
        "sys.exit(cli.main([]))\n")
    proc = subprocess.run(f"'{sys.executable}' '{script}' | head -3", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["line 0", "line 1", "line 2"]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
