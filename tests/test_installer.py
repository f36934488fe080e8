"""``lowlight install`` / ``lowlight uninstall`` in a fake home folder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path

import pytest

from installer import desktop, gimp
from installer.cli import run_install
from lowlight.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX home layout")

PLUGIN_REL = Path(".config/GIMP/3.0/plug-ins/enhance_low_light")
DESKTOP_REL = Path(".local/share/applications/enhance-low-light.desktop")
ICON_REL = Path(".local/share/icons/hicolor/scalable/apps/enhance-low-light.svg")


def _fake_gimp(bindir: Path, version: str = "3.0.4", name: str = "gimp-3.0") -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / name
    exe.write_text(f"#!/bin/sh\necho 'GNU Image Manipulation Program version {version}'\n")
    exe.chmod(0o755)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME with no GIMP on PATH (tests add a fake one when they need it)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    if any((Path(d) / n).exists() for d in ("/usr/bin", "/bin")
           for n in ("gimp", "gimp-3.0", "gimp-3")):
        pytest.skip("a real GIMP is installed system-wide; detection tests need a clean PATH")
    return home


@pytest.fixture
def with_gimp(home: Path) -> Path:
    _fake_gimp(home.parent / "bin")
    return home


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with file contents (None for folders)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def _install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["install", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _uninstall(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["uninstall", *args])
    out, err = capsys.readouterr()
    return code, out, err


class TestInstall:
    def test_writes_plugin_settings_desktop_entry_and_icon(
        self, with_gimp: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, err = _install(capsys)
        assert code == 0, err
        assert "GIMP 3.0.4" in out
        plugin = with_gimp / PLUGIN_REL / "enhance_low_light.py"
        assert plugin.read_bytes() == gimp.plugin_source()
        assert plugin.stat().st_mode & stat.S_IXUSR
        assert plugin.read_text().startswith("#!/usr/bin/env python3")
        settings = json.loads((with_gimp / PLUGIN_REL / "enhance_low_light.json").read_text())
        assert settings["python"] == sys.executable
        assert (Path(settings["project_root"]) / "plugin" / "gimp_bridge.py").is_file()
        assert settings["flatpak"] is False
        entry = (with_gimp / DESKTOP_REL).read_text()
        assert f"Exec={sys.executable} -m lowlight panel %F" in entry.replace('"', "")
        assert "Icon=enhance-low-light" in entry
        xml.dom.minidom.parseString((with_gimp / ICON_REL).read_bytes())  # a valid SVG
        assert "Filters > Enhance > Enhance Low Light" in out

    def test_twice_is_harmless(self, with_gimp: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
        assert _install(capsys)[0] == 0
        first = _tree(with_gimp)
        code, out, err = _install(capsys)
        assert code == 0, err
        assert out.count("unchanged") == 4
        assert _tree(with_gimp) == first

    def test_dry_run_writes_nothing(self, with_gimp: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        before = _tree(with_gimp)
        code, out, _ = _install(capsys, "--dry-run")
        assert code == 0
        assert "would write GIMP plug-in" in out and "would write desktop entry" in out
        assert "dry run" in out
        assert _tree(with_gimp) == before

    def test_updates_its_own_files(self, with_gimp: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        _install(capsys)
        settings = with_gimp / PLUGIN_REL / "enhance_low_light.json"
        settings.write_text("{}")  # e.g. an older version's settings
        # a changed file that install wrote is its own to update
        code, out, _ = _install(capsys)
        assert code == 0
        assert "updated plug-in settings" in out
        assert json.loads(settings.read_text())["python"] == sys.executable

    def test_never_overwrites_a_file_it_did_not_write(
        self, with_gimp: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        foreign = with_gimp / PLUGIN_REL / "enhance_low_light.py"
        foreign.parent.mkdir(parents=True)
        foreign.write_text("# the user's own script\n")
        code, _, err = _install(capsys)
        assert code == 1
        assert "was not written by lowlight install" in err
        assert foreign.read_text() == "# the user's own script\n"

    def test_gimp_dir_override(self, home: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "custom" / "plug-ins"
        code, out, err = _install(capsys, "--gimp-dir", str(target), "--no-desktop")
        assert code == 0, err
        assert (target / "enhance_low_light" / "enhance_low_light.py").is_file()
        assert not (home / ".config").exists()
        assert not (home / DESKTOP_REL).exists()
        assert f"--gimp-dir {target}" in out

    def test_gimp_dir_may_name_the_settings_folder(self, home: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        settings = tmp_path / "GIMP" / "3.0"
        (settings / "plug-ins").mkdir(parents=True)
        assert _install(capsys, "--gimp-dir", str(settings), "--no-desktop")[0] == 0
        assert (settings / "plug-ins" / "enhance_low_light" / "enhance_low_light.py").is_file()

    def test_no_gimp_is_a_clear_message_and_the_desktop_entry_still_installs(
        self, home: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = _install(capsys)
        assert code == 1
        assert "No GIMP 3 was found" in err
        assert "--gimp-dir" in err and "gimp.org" in err
        assert (home / DESKTOP_REL).is_file()
        assert not (home / ".config" / "GIMP").exists()

    def test_gimp_2_is_not_gimp_3(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        _fake_gimp(home.parent / "bin", version="2.10.38", name="gimp")
        assert gimp.detect() == []
        code, _, err = _install(capsys, "--no-desktop")
        assert code == 1 and "No GIMP 3 was found" in err

    def test_flatpak_gimp_is_detected_and_gets_the_host_hint(
        self, home: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bindir = (home / ".local/share/flatpak/app/org.gimp.GIMP/current/active/files/bin")
        bindir.mkdir(parents=True)
        (bindir / "gimp-3.0").write_text("")
        targets = gimp.detect()
        assert [t.flatpak for t in targets] == [True]
        plugins = home / ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins"
        assert targets[0].plugins_dir == plugins
        code, out, err = _install(capsys, "--no-desktop")
        assert code == 0, err
        assert (plugins / "enhance_low_light" / "enhance_low_light.py").is_file()
        settings = json.loads((plugins / "enhance_low_light" / "enhance_low_light.json")
                              .read_text())
        assert settings["flatpak"] is True
        assert "flatpak override --user --talk-name=org.freedesktop.Flatpak" in out

    def test_flatpak_settings_folder_alone_counts(self, home: Path) -> None:
        (home / ".var/app/org.gimp.GIMP/config/GIMP/3.0").mkdir(parents=True)
        (targets,) = [gimp.detect()]
        assert len(targets) == 1 and targets[0].flatpak

    def test_native_and_flatpak_both_get_it(self, with_gimp: Path) -> None:
        (with_gimp / ".var/app/org.gimp.GIMP/config/GIMP/3.0").mkdir(parents=True)
        targets = gimp.detect()
        assert sorted(t.flatpak for t in targets) == [False, True]

    def test_settings_folder_of_a_later_gimp_3(self, home: Path) -> None:
        (home / ".config/GIMP/3.2").mkdir(parents=True)
        (home / ".config/GIMP/2.10").mkdir(parents=True)
        (target,) = gimp.detect()
        assert target.plugins_dir == home / ".config/GIMP/3.2/plug-ins"

    @pytest.mark.parametrize("platform", ["win32", "darwin"])
    def test_windows_and_macos_locations(self, tmp_path: Path, platform: str) -> None:
        home = tmp_path / "h"
        if platform == "win32":
            appdata = tmp_path / "Roaming"
            (appdata / "GIMP" / "3.0").mkdir(parents=True)
            env = {"APPDATA": str(appdata), "USERPROFILE": str(home)}
            expected = appdata / "GIMP" / "3.0" / "plug-ins"
        else:
            (home / "Library/Application Support/GIMP/3.0").mkdir(parents=True)
            env = {"HOME": str(home)}
            expected = home / "Library/Application Support/GIMP/3.0/plug-ins"
        targets = gimp.detect(env=env, platform=platform, home=home,
                              which=lambda name: None)
        assert [t.plugins_dir for t in targets] == [expected]
        assert not desktop.supported(platform)


class TestUninstall:
    def test_removes_exactly_what_install_added(
        self, with_gimp: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # The user's own files, some in the folders install writes to.
        (with_gimp / ".config/GIMP/3.0").mkdir(parents=True)
        (with_gimp / ".config/GIMP/3.0/gimprc").write_text("(theme \"Dark\")\n")
        other = with_gimp / ".config/GIMP/3.0/plug-ins/other/other.py"
        other.parent.mkdir(parents=True)
        other.write_text("print('mine')\n")
        (with_gimp / ".local/share/applications").mkdir(parents=True)
        (with_gimp / ".local/share/applications/mine.desktop").write_text("[Desktop Entry]\n")
        before = _tree(with_gimp)
        assert _install(capsys)[0] == 0
        assert _install(capsys)[0] == 0
        code, out, err = _uninstall(capsys)
        assert code == 0, err
        assert _tree(with_gimp) == before
        assert "removed" in out

    def test_leaves_what_the_user_added_or_changed(
        self, with_gimp: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _install(capsys)
        note = with_gimp / PLUGIN_REL / "my-notes.txt"
        note.write_text("keep me")
        entry = with_gimp / DESKTOP_REL
        entry.write_text(entry.read_text() + "NoDisplay=true\n")
        code, out, _ = _uninstall(capsys)
        assert code == 0
        assert note.read_text() == "keep me"
        assert entry.is_file() and "changed since it was installed" in out
        assert not (with_gimp / PLUGIN_REL / "enhance_low_light.py").exists()
        assert not (with_gimp / ICON_REL).exists()
        # The record keeps the changed file, so a later uninstall still knows it.
        code, out, _ = _uninstall(capsys)
        assert "changed since it was installed" in out

    def test_dry_run_removes_nothing(self, with_gimp: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        _install(capsys)
        installed = _tree(with_gimp)
        code, out, _ = _uninstall(capsys, "--dry-run")
        assert code == 0
        assert f"would remove {with_gimp / PLUGIN_REL / 'enhance_low_light.py'}" in out
        assert f"would remove folder {with_gimp / '.config'}" in out
        assert _tree(with_gimp) == installed

    def test_nothing_recorded(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = _uninstall(capsys)
        assert code == 0 and "Nothing to remove" in out
        assert _tree(home) == {}

    def test_gimp_dir_install_is_uninstalled_too(
        self, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / "custom"
        target.mkdir()
        assert _install(capsys, "--gimp-dir", str(target), "--no-desktop")[0] == 0
        assert _uninstall(capsys)[0] == 0
        assert list(target.iterdir()) == []
        assert _tree(home) == {}


def test_desktop_exec_quoting() -> None:
    line = desktop.exec_line(["/opt/my apps/py$thon", "-m", "lowlight", "50%"])
    assert line == '"/opt/my apps/py\\\\$thon" -m lowlight 50%%'


def test_handler_is_registered() -> None:
    from lowlight.cli import build_parser

    help_text = build_parser().format_help()
    assert "install" in help_text and "uninstall" in help_text
    assert run_install is not None


def test_wheel_carries_the_plugin_bridge_and_icon(tmp_path: Path) -> None:
    """The installed package (not only a checkout) has every file install copies."""
    pytest.importorskip("setuptools")
    import shutil

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, src / name)
    for package in ("lowlight", "hybridnet", "worker", "plugin", "installer"):
        shutil.copytree(repo / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip()[-300:]}")
    import zipfile

    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "plugin/gimp/enhance_low_light/enhance_low_light.py" in names
    assert "plugin/gimp_bridge.py" in names
    assert "installer/assets/enhance-low-light.svg" in names
