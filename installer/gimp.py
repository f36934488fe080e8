"""Where GIMP 3 looks for plug-ins, whether GIMP 3 is here, and what to put there.

GIMP 3 runs every executable ``plug-ins/NAME/NAME.*`` of its per-user configuration
folder, so the plug-in goes to ``<config>/plug-ins/enhance_low_light/enhance_low_light.py``
(executable), with ``enhance_low_light.json`` beside it: the project's Python and root
folder, which the plug-in needs to reach the worker (see
``plugin/gimp/enhance_low_light/enhance_low_light.py``).

Per-user configuration folders (``3.0`` is GIMP's *application* version: GIMP 3.0.x uses
``3.0``; a later 3.y uses ``3.y``):

=========  ===============================================================
Linux      ``$XDG_CONFIG_HOME/GIMP/3.0`` (``~/.config/GIMP/3.0``)
Flatpak    ``~/.var/app/org.gimp.GIMP/config/GIMP/3.0``
Windows    ``%APPDATA%\\GIMP\\3.0``
macOS      ``~/Library/Application Support/GIMP/3.0``
=========  ===============================================================

GIMP 3 counts as found when one of these holds: a ``gimp-3.x``/``gimp-3``/``gimp``
executable on ``PATH`` whose ``--version`` says 3.x; a Flatpak ``org.gimp.GIMP``
installation that ships ``gimp-3.x``; an existing ``GIMP/3.x`` configuration folder
(GIMP has run at least once); on Windows ``GIMP 3`` under Program Files; on macOS a
``GIMP.app`` of version 3. Every GIMP 3 found gets the plug-in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from installer.manifest import WriteFile
from lowlight import __version__

PLUGIN_NAME = "enhance_low_light"
SETTINGS_NAME = f"{PLUGIN_NAME}.json"
FLATPAK_APP = "org.gimp.GIMP"
DEFAULT_APP_VERSION = "3.0"
_VERSION_RE = re.compile(r"version\s+(3)\.(\d+)(?:\.(\d+))?", re.IGNORECASE)
_APP_DIR_RE = re.compile(r"^3\.\d+$")


@dataclass(frozen=True)
class GimpInstall:
    """One GIMP 3 to install into.

    Attributes:
        label: for the user ("GIMP 3.0.4 (gimp-3.0 on PATH)", "GIMP 3 (Flatpak)").
        plugins_dir: its per-user ``plug-ins`` folder.
        flatpak: the GIMP runs sandboxed (the plug-in reaches the host through
            ``flatpak-spawn --host``).
    """

    label: str
    plugins_dir: Path
    flatpak: bool = False

    @property
    def plugin_dir(self) -> Path:
        return self.plugins_dir / PLUGIN_NAME

    @property
    def plugin_file(self) -> Path:
        return self.plugin_dir / f"{PLUGIN_NAME}.py"

    @property
    def settings_file(self) -> Path:
        return self.plugin_dir / SETTINGS_NAME


VersionProbe = Callable[[str], str | None]


def gimp_version(executable: str) -> str | None:
    """``"3.0.4"`` from ``EXECUTABLE --version``, or None when it is not GIMP 3."""
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out.stdout + out.stderr)
    if not match:
        return None
    return ".".join(g for g in match.groups() if g is not None)


def _app_version(version: str | None) -> str:
    """GIMP's configuration-folder version for a release: ``"3.0.4"`` -> ``"3.0"``."""
    if not version:
        return DEFAULT_APP_VERSION
    major, minor = version.split(".")[:2]
    return f"{major}.{minor}"


def _config_app_dirs(gimp_config: Path) -> list[str]:
    """The ``3.x`` folders under a ``GIMP`` configuration folder, oldest first."""
    try:
        names = [p.name for p in gimp_config.iterdir() if p.is_dir() and
                 _APP_DIR_RE.match(p.name)]
    except OSError:
        return []
    return sorted(names, key=lambda n: int(n.split(".")[1]))


def _flatpak_binaries(home: Path) -> list[Path]:
    roots = [Path("/var/lib/flatpak"), home / ".local" / "share" / "flatpak"]
    found: list[Path] = []
    for root in roots:
        bindir = root / "app" / FLATPAK_APP / "current" / "active" / "files" / "bin"
        try:
            found += sorted(bindir.glob("gimp-3*"))
        except OSError:
            continue
    return found


def user_config_root(env: Mapping[str, str], platform: str, home: Path) -> Path:
    """The folder that holds ``GIMP/3.x`` for a native GIMP on ``platform``."""
    if platform.startswith("win"):
        appdata = env.get("APPDATA")
        return Path(appdata) if appdata else home / "AppData" / "Roaming"
    if platform == "darwin":
        return home / "Library" / "Application Support"
    xdg = env.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else home / ".config"


def _mac_app_version(home: Path) -> str | None:
    import plistlib

    for app in (Path("/Applications/GIMP.app"), home / "Applications" / "GIMP.app"):
        try:
            info = plistlib.loads((app / "Contents" / "Info.plist").read_bytes())
        except (OSError, ValueError):
            continue
        version = str(info.get("CFBundleShortVersionString", ""))
        if version.startswith("3."):
            return version
    return None


def _windows_binaries(env: Mapping[str, str]) -> list[Path]:
    found = []
    for var in ("ProgramFiles", "ProgramW6432", "LOCALAPPDATA"):
        base = env.get(var)
        if not base:
            continue
        sub = Path(base) / ("Programs" if var == "LOCALAPPDATA" else "") / "GIMP 3" / "bin"
        try:
            found += sorted(sub.glob("gimp-3*.exe"))
        except OSError:
            continue
    return found


def detect(
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    home: Path | None = None,
    which: Callable[[str], str | None] = shutil.which,
    probe: VersionProbe = gimp_version,
) -> list[GimpInstall]:
    """Every GIMP 3 of this user, each once (see the module docstring for the rules)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home()) if home is None \
        else home
    found: dict[Path, GimpInstall] = {}

    def add(label: str, plugins_dir: Path, flatpak: bool = False) -> None:
        found.setdefault(plugins_dir, GimpInstall(label, plugins_dir, flatpak))

    config_root = user_config_root(env, platform, home)
    exe_names = ["gimp-3.0", "gimp-3", "gimp"]
    if platform.startswith("win"):
        exe_names = ["gimp-3.0.exe", "gimp-3.exe", "gimp.exe"]
    for name in exe_names:
        exe = which(name)
        if exe is None:
            continue
        version = probe(exe)
        if version is not None:
            add(f"GIMP {version} ({name} on PATH)",
                config_root / "GIMP" / _app_version(version) / "plug-ins")
            break
    if platform.startswith("win"):
        for exe_path in _windows_binaries(env):
            add(f"GIMP 3 ({exe_path})", config_root / "GIMP" / DEFAULT_APP_VERSION / "plug-ins")
            break
    if platform == "darwin":
        mac_version = _mac_app_version(home)
        if mac_version:
            add(f"GIMP {mac_version} (GIMP.app)",
                config_root / "GIMP" / _app_version(mac_version) / "plug-ins")
    for app_dir in _config_app_dirs(config_root / "GIMP"):
        add(f"GIMP {app_dir} (settings in {config_root / 'GIMP' / app_dir})",
            config_root / "GIMP" / app_dir / "plug-ins")
    if platform.startswith("linux"):
        flatpak_config = home / ".var" / "app" / FLATPAK_APP / "config" / "GIMP"
        for binary in _flatpak_binaries(home):
            version = binary.name.removeprefix("gimp-")
            app_dir = version if _APP_DIR_RE.match(version) else DEFAULT_APP_VERSION
            add(f"GIMP {app_dir} (Flatpak {FLATPAK_APP})",
                flatpak_config / app_dir / "plug-ins", flatpak=True)
        for app_dir in _config_app_dirs(flatpak_config):
            add(f"GIMP {app_dir} (Flatpak {FLATPAK_APP})",
                flatpak_config / app_dir / "plug-ins", flatpak=True)
    return list(found.values())


def from_gimp_dir(path: Path) -> GimpInstall:
    """``--gimp-dir``: a plug-ins folder named by the user (a Flatpak one is recognised;
    a GIMP settings folder such as ``~/.config/GIMP/3.0`` means its ``plug-ins``)."""
    path = path.expanduser().absolute()
    if path.name != "plug-ins" and (path / "plug-ins").is_dir():  # a GIMP settings folder
        path = path / "plug-ins"
    flatpak = f"/.var/app/{FLATPAK_APP}/" in path.as_posix() + "/"
    return GimpInstall(f"--gimp-dir {path}", path, flatpak)


NOT_FOUND = (
    "No GIMP 3 was found (looked for gimp-3.0 or gimp 3.x on PATH, a GIMP/3.x settings "
    f"folder, and the Flatpak {FLATPAK_APP}). Install GIMP 3 from https://www.gimp.org/downloads/ "
    "and start it once, then run `lowlight install` again; or name its plug-ins folder "
    "with --gimp-dir DIR (for example ~/.config/GIMP/3.0/plug-ins)."
)

FLATPAK_HINT = (
    "GIMP from Flatpak runs plug-ins in a sandbox: to let the plug-in start the enhancer "
    "on this machine, run once: flatpak override --user --talk-name=org.freedesktop.Flatpak "
    f"{FLATPAK_APP}"
)


def plugin_source() -> bytes:
    """The plug-in file as shipped in the ``plugin`` package."""
    ref = resources.files("plugin").joinpath("gimp", PLUGIN_NAME, f"{PLUGIN_NAME}.py")
    return ref.read_bytes()


def project_root() -> Path:
    """The folder that holds the ``plugin``, ``worker`` and ``lowlight`` packages."""
    import plugin

    return Path(plugin.__file__).resolve().parent.parent


def settings(python: str, flatpak: bool, worker_args: Sequence[str] = ()) -> dict[str, object]:
    """What the plug-in reads from ``enhance_low_light.json``.

    ``worker_args`` are passed to a worker the plug-in starts when none runs
    (``--weights PATH``, ``--device cpu``...).
    """
    return {
        "installed_by": "lowlight install",
        "version": __version__,
        "python": python,
        "project_root": str(project_root()),
        "flatpak": flatpak,
        "worker_args": list(worker_args),
    }


def plugin_files(target: GimpInstall, python: str | None = None,
                 worker_args: Sequence[str] = ()) -> list[WriteFile]:
    """The files install writes for one GIMP."""
    python = python or sys.executable
    data = json.dumps(settings(python, target.flatpak, worker_args), indent=2) + "\n"
    return [
        WriteFile(target.plugin_file, plugin_source(), "GIMP plug-in", executable=True),
        WriteFile(target.settings_file, data.encode("utf-8"), "plug-in settings"),
    ]
