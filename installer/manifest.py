"""What ``lowlight install`` wrote, so that ``lowlight uninstall`` removes exactly that.

The manifest is a small JSON file in the user's state folder
(``$XDG_STATE_HOME/enhance-low-light/installed.json``, ``~/.local/state/...`` by default;
``%LOCALAPPDATA%`` on Windows, ``~/Library/Application Support`` on macOS). For every
file it records the path and the SHA-256 of what was written; for every folder, that
install created it. Uninstall removes a file only if it still holds what install wrote
(a file the user changed is left in place and named), and a folder only if install
created it and it is empty. Files the user put beside ours are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_ID = "enhance-low-light"
MANIFEST_NAME = "installed.json"
_FORMAT = 1


def state_dir(env: Mapping[str, str] | None = None, platform: str | None = None,
              home: Path | None = None) -> Path:
    """The per-user folder that holds the manifest."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or env.get("APPDATA")
        return (Path(base) if base else home / "AppData" / "Local") / APP_ID
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_ID
    xdg = env.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "state") / APP_ID


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


@dataclass
class Manifest:
    """Installed files (path -> sha256) and folders install created, in creation order."""

    path: Path
    files: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ManifestError(
                f"the install record {path} cannot be read ({exc}); remove it and install "
                "again, or delete the installed files by hand"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ManifestError(
                f"the install record {path} has an unknown format; it was written by another "
                "version of lowlight (use that version to uninstall)"
            )
        files = {str(k): str(v) for k, v in dict(data.get("files", {})).items()}
        dirs = [str(d) for d in data.get("dirs", [])]
        notes = dict(data.get("notes", {}))
        return cls(path, files, dirs, notes)

    @property
    def empty(self) -> bool:
        return not self.files and not self.dirs

    def save(self) -> None:
        created = [str(p) for p in _missing_parents(self.path)]
        if created:
            state_dirs = list(self.notes.get("state_dirs", []))
            self.notes["state_dirs"] = state_dirs + [d for d in created if d not in state_dirs]
        # The folder is shared with the worker's log, which requires it private (0700).
        self.path.parent.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"format": _FORMAT, "files": self.files, "dirs": self.dirs,
                   "notes": self.notes}
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def add_file(self, path: Path, digest: str) -> None:
        self.files[str(path)] = digest

    def add_dir(self, path: Path) -> None:
        if str(path) not in self.dirs:
            self.dirs.append(str(path))

    def owns(self, path: Path) -> bool:
        return str(path) in self.files


class ManifestError(Exception):
    """The install record is unreadable; the message says what to do."""


@dataclass(frozen=True)
class WriteFile:
    """One file install writes: where, what, and a few words for the user."""

    path: Path
    data: bytes
    what: str
    executable: bool = False


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, outermost first."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing[::-1]


def write_files(actions: list[WriteFile], manifest: Manifest, *, dry_run: bool,
                log: list[str]) -> list[str]:
    """Write ``actions`` (or describe them when ``dry_run``), recording them in ``manifest``.

    Returns:
        One sentence per file that could not be written (nothing else is undone).
    """
    problems: list[str] = []
    created: set[Path] = set()
    for act in actions:
        for folder in _missing_parents(act.path):
            if folder in created:
                continue
            created.add(folder)
            if dry_run:
                log.append(f"would create folder {folder}")
                continue
            try:
                folder.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                problems.append(f"cannot create the folder {folder}: {exc.strerror or exc}")
                break
            manifest.add_dir(folder)
            log.append(f"created folder {folder}")
        digest = sha256(act.data)
        current = file_sha256(act.path) if act.path.is_file() else None
        if act.path.exists() and not act.path.is_file():
            problems.append(f"{act.path} exists and is not a file; move it away and run "
                            "again")
            continue
        if current == digest:
            if not dry_run:
                manifest.add_file(act.path, digest)
                _set_mode(act)
            log.append(f"{'would leave' if dry_run else 'left'} {act.what} unchanged: "
                       f"{act.path}")
            continue
        if current is not None and not manifest.owns(act.path):
            problems.append(
                f"{act.path} exists and was not written by lowlight install; move it away "
                "and run the command again"
            )
            continue
        verb = "update" if current is not None else "write"
        if dry_run:
            log.append(f"would {verb} {act.what}: {act.path}")
            continue
        try:
            tmp = act.path.with_name(f".{act.path.name}.tmp")
            tmp.write_bytes(act.data)
            os.replace(tmp, act.path)
            _set_mode(act)
        except OSError as exc:
            problems.append(f"cannot write {act.path}: {exc.strerror or exc}")
            continue
        manifest.add_file(act.path, digest)
        log.append(f"{'updated' if current is not None else 'wrote'} {act.what}: {act.path}")
    return problems


def _set_mode(act: WriteFile) -> None:
    if os.name == "posix":
        act.path.chmod(0o755 if act.executable else 0o644)


def remove_recorded(manifest: Manifest, *, dry_run: bool,
                    log: list[str]) -> tuple[list[str], list[str]]:
    """Remove what ``manifest`` records (or describe it), then the manifest itself.

    Returns:
        ``(left, errors)``: what was deliberately left in place (changed by the user, or a
        folder holding other files) and what could not be removed.
    """
    left: list[str] = []
    errors: list[str] = []
    kept: dict[str, str] = {}
    gone: set[Path] = set()  # what is (or, in a dry run, would be) removed
    for name, digest in manifest.files.items():
        path = Path(name)
        if not path.is_file():
            log.append(f"already gone: {path}")
            continue
        if file_sha256(path) != digest:
            left.append(f"left {path} in place: it changed since it was installed")
            kept[name] = digest
            continue
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                errors.append(f"cannot remove {path}: {exc.strerror or exc}")
                kept[name] = digest
                continue
        gone.add(path)
        log.append(f"{'would remove' if dry_run else 'removed'} {path}")
    # The record goes too once nothing it lists stays (its folders may be among ours).
    state_dirs = [Path(d) for d in manifest.notes.get("state_dirs", [])]
    if not kept:
        gone.add(manifest.path)
        if not dry_run:
            try:
                manifest.path.unlink()
            except FileNotFoundError:
                pass
        for folder in reversed(state_dirs):
            if not _removable(folder, gone, dry_run):
                break
            gone.add(folder)
    left_dirs: set[Path] = set()
    for name in reversed(manifest.dirs):
        folder = Path(name)
        if not folder.is_dir():
            continue
        if not _removable(folder, gone, dry_run):
            left_dirs.add(folder)
            if any(p not in left_dirs for p in folder.iterdir()):  # name the innermost only
                left.append(f"left the folder {folder} in place: it holds other files")
            continue
        gone.add(folder)
        log.append(f"{'would remove' if dry_run else 'removed'} folder {folder}")
    if not dry_run and kept:
        manifest.files = kept
        manifest.dirs = [d for d in manifest.dirs if Path(d) not in gone]
        manifest.save()
    return left, errors


def _removable(folder: Path, gone: set[Path], dry_run: bool) -> bool:
    """Remove ``folder`` if it is empty (dry run: if all it holds is in ``gone``)."""
    try:
        if dry_run:
            return all(p in gone for p in folder.iterdir())
        folder.rmdir()
    except OSError:
        return False
    return True
