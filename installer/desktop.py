"""A desktop entry (Linux) that opens the Enhance Low Light panel, with its icon.

Files (``$XDG_DATA_HOME`` defaults to ``~/.local/share``):

* ``$XDG_DATA_HOME/applications/enhance-low-light.desktop``: runs
  ``<project python> -m lowlight panel %F`` (photos dropped on the launcher, or "Open
  with" in a file manager, arrive as arguments);
* ``$XDG_DATA_HOME/icons/hicolor/scalable/apps/enhance-low-light.svg``.

No desktop database or icon cache is regenerated (desktops watch these folders), so
uninstall can remove exactly these two files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from installer.manifest import WriteFile

APP_ID = "enhance-low-light"
MIME_TYPES = ("image/jpeg", "image/png", "image/tiff", "image/webp", "image/bmp")


def data_home(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    xdg = env.get("XDG_DATA_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"


def supported(platform: str | None = None) -> bool:
    """Desktop entries are a freedesktop.org (Linux and BSD) thing."""
    platform = sys.platform if platform is None else platform
    return not platform.startswith(("win", "darwin", "cygwin"))


def _quote_exec_arg(arg: str) -> str:
    """One Exec argument, quoted by the Desktop Entry Specification's rules."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    escaped = arg.replace("%", "%%")
    if not any(ch in reserved for ch in escaped):
        quoted = escaped
    else:
        inner = "".join("\\" + ch if ch in '"`$\\' else ch for ch in escaped)
        quoted = f'"{inner}"'
    # The value is also a desktop-file string, where a backslash is written twice.
    return quoted.replace("\\", "\\\\")


def exec_line(command: Sequence[str]) -> str:
    return " ".join(_quote_exec_arg(a) for a in command)


def entry_text(python: str) -> str:
    command = exec_line([python, "-m", "lowlight", "panel"])
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        "Name=Enhance Low Light",
        "GenericName=Low-light photo enhancer",
        "Comment=Brighten dark, noisy photos with a neural network",
        f"Exec={command} %F",
        f"Icon={APP_ID}",
        "Terminal=false",
        "StartupNotify=true",
        "Categories=Graphics;Photography;2DGraphics;RasterGraphics;",
        "Keywords=photo;dark;night;low light;brighten;denoise;",
        "MimeType=" + ";".join(MIME_TYPES) + ";",
        "",
    ])


def icon_source() -> bytes:
    return resources.files("installer").joinpath("assets", f"{APP_ID}.svg").read_bytes()


def desktop_files(env: Mapping[str, str] | None = None, home: Path | None = None,
                  python: str | None = None) -> list[WriteFile]:
    base = data_home(env, home)
    python = python or sys.executable
    return [
        WriteFile(base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
                  icon_source(), "icon"),
        WriteFile(base / "applications" / f"{APP_ID}.desktop",
                  entry_text(python).encode("utf-8"), "desktop entry"),
    ]
