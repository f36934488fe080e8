"""``lowlight install`` and ``lowlight uninstall``: the GIMP 3 plug-in and a desktop entry.

``lowlight install`` puts the GIMP plug-in into every GIMP 3 found (see
:mod:`installer.gimp`) or into ``--gimp-dir DIR``, and on Linux a desktop entry with an
icon that opens the panel (:mod:`installer.desktop`). Everything it writes is recorded
(:mod:`installer.manifest`) so that ``lowlight uninstall`` removes exactly that.

* ``--dry-run`` prints what would happen and writes nothing;
* running install twice is harmless (identical files are left alone, changed ones
  updated);
* when no GIMP 3 is found, the desktop entry is still installed (the panel does not need
  GIMP), the message says how to get GIMP 3 or use ``--gimp-dir``, and the exit status
  is 1;
* a file in the way that install did not write is never overwritten (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from installer import desktop, gimp
from installer.manifest import (
    Manifest,
    ManifestError,
    WriteFile,
    remove_recorded,
    state_dir,
    write_files,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "install",
        help="install the GIMP 3 plug-in and a desktop entry for the panel",
        description=(
            "Install the GIMP 3 filter Filters > Enhance > Enhance Low Light... into every "
            "GIMP 3 found (or --gimp-dir), and on Linux a desktop entry with an icon that "
            "opens the panel. Running it again is harmless; `lowlight uninstall` removes "
            "exactly what it added."
        ),
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be done; write nothing")
    p.add_argument("--gimp-dir", type=Path, metavar="DIR",
                   help="a GIMP 3 plug-ins folder to install into instead of the detected ones "
                        "(e.g. ~/.config/GIMP/3.0/plug-ins)")
    p.add_argument("--no-desktop", action="store_true",
                   help="do not install the desktop entry and icon")
    p.add_argument("--no-gimp", action="store_true", help="do not install the GIMP plug-in")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="model weights for a worker the plug-in starts (default: the "
                        "bundled model)")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda",
                   help="device for a worker the plug-in starts (default auto)")
    p.set_defaults(handler=run_install)

    u = subparsers.add_parser(
        "uninstall",
        help="remove what `lowlight install` added",
        description=(
            "Remove exactly the files and folders `lowlight install` added. Files changed "
            "since, and anything else in those folders, are left in place."
        ),
    )
    u.add_argument("--dry-run", action="store_true", help="print what would be removed")
    u.set_defaults(handler=run_uninstall)


def _manifest() -> Manifest:
    return Manifest.load(state_dir() / "installed.json")


def run_install(args: argparse.Namespace) -> int:
    try:
        manifest = _manifest()
    except ManifestError as exc:
        print(f"lowlight install: {exc}", file=sys.stderr)
        return 1
    actions: list[WriteFile] = []
    notes: list[str] = []
    problems: list[str] = []
    worker_args: list[str] = []
    if args.weights is not None:
        if not args.weights.is_file():
            print(f"lowlight install: {args.weights}: the weights file does not exist",
                  file=sys.stderr)
            return 2
        worker_args += ["--weights", str(args.weights.expanduser().resolve())]
    if args.device is not None:
        worker_args += ["--device", args.device]
    targets: list[gimp.GimpInstall] = []
    if not args.no_gimp:
        targets = [gimp.from_gimp_dir(args.gimp_dir)] if args.gimp_dir else gimp.detect()
        if not targets:
            problems.append(gimp.NOT_FOUND)
        for target in targets:
            print(f"GIMP: {target.label}")
            actions += gimp.plugin_files(target, worker_args=worker_args)
            if target.flatpak:
                notes.append(gimp.FLATPAK_HINT)
    if not args.no_desktop:
        if desktop.supported():
            actions += desktop.desktop_files()
        else:
            notes.append("no desktop entry: desktop entries are for Linux desktops")
    log: list[str] = []
    problems += write_files(actions, manifest, dry_run=args.dry_run, log=log)
    if not args.dry_run and not manifest.empty:
        manifest.save()
    for line in log:
        print(line)
    for note in notes:
        print(f"note: {note}")
    if targets and not args.dry_run and not problems:
        print("Restart GIMP, then use Filters > Enhance > Enhance Low Light...")
    for problem in problems:
        print(f"lowlight install: {problem}", file=sys.stderr)
    if args.dry_run:
        print("(dry run: nothing was written)")
    return 1 if problems else 0


def run_uninstall(args: argparse.Namespace) -> int:
    try:
        manifest = _manifest()
    except ManifestError as exc:
        print(f"lowlight uninstall: {exc}", file=sys.stderr)
        return 1
    if manifest.empty:
        print(f"Nothing to remove: no install is recorded in {manifest.path}.")
        return 0
    log: list[str] = []
    left, errors = remove_recorded(manifest, dry_run=args.dry_run, log=log)
    for line in log:
        print(line)
    for line in left:
        print(f"note: {line}")
    for line in errors:
        print(f"lowlight uninstall: {line}", file=sys.stderr)
    if args.dry_run:
        print("(dry run: nothing was removed)")
    return 1 if errors else 0
