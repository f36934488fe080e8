"""``lowlight panel [FILE...]``: the desktop panel.

Opens the window (:class:`plugin.panel.main_window.MainWindow`) with the given photos
(folders go to the Batch tab) and connects to the background worker, starting one when
none runs. The panel starts even when the worker cannot: the status bar then shows the
error and what to do, with a Restart button.

Importing this module imports neither Qt nor torch (``lowlight --help`` stays fast); Qt
is imported when the command runs, torch never (pixels go through :mod:`worker.client`).

HiDPI: Qt 6 scales by the screen's device pixel ratio; fractional ratios are passed
through (no rounding), and the viewer's 100 % is one photo pixel per *device* pixel.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from plugin.panel.main_window import MainWindow

ORGANIZATION = "enhance-low-light"
SETTINGS_NAME = "panel"
THEME_CHOICES = ("system", "light", "dark")  # plugin.panel.theme.THEMES, without Qt


def register(subparsers: Any) -> None:
    """Add ``panel`` to the ``lowlight`` command (see :mod:`lowlight.cli`)."""
    from worker.cli import device_arg

    p = subparsers.add_parser(
        "panel",
        help="open the desktop panel: compare, adjust strength, save; whole folders in batch",
        description=(
            "Open the Enhance Low Light window with the given photos (a folder opens in the "
            "Batch tab). Enhancement runs in the background worker, started when needed."
        ),
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="photos or a folder")
    p.add_argument("--weights", type=Path,
                   help="model weights for a worker the panel starts (default: bundled)")
    p.add_argument("--device", type=device_arg, default="auto", metavar="auto|cpu|cuda",
                   help="where a worker the panel starts runs (default auto)")
    p.add_argument("--theme", choices=THEME_CHOICES, default=None,
                   help="colour theme (default: the last one chosen, else the desktop's)")
    p.set_defaults(handler=run)


def start_args(weights: Path | None, device: str) -> list[str]:
    """The worker's arguments for a worker the panel starts."""
    args = ["--device", device]
    if weights is not None:
        args += ["--weights", str(weights.expanduser().resolve())]
    return args


def run(args: argparse.Namespace) -> int:
    if args.weights is not None and not args.weights.is_file():
        print(f"lowlight panel: the weights file {args.weights} does not exist; check the path",
              file=sys.stderr)
        return 2
    try:
        app = create_app()
    except Exception as exc:  # no display, missing Qt platform plugin...
        print(f"lowlight panel: the window cannot be opened ({exc}); is a desktop session "
              "running? (QT_QPA_PLATFORM=offscreen runs without one)", file=sys.stderr)
        return 1
    window = create_window(app, start_args(args.weights, args.device), theme_name=args.theme)
    window.show()
    window.open_paths([Path(f) for f in args.files])
    return int(app.exec())


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists), named for settings and the desktop."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtGui import QGuiApplication
    from PyQt6.QtWidgets import QApplication

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("Enhance Low Light")
    app.setOrganizationName(ORGANIZATION)
    app.setDesktopFileName(ORGANIZATION)
    return app


def default_settings() -> QSettings:
    """``~/.config/enhance-low-light/panel.conf`` (the platform's usual place)."""
    from PyQt6.QtCore import QSettings

    return QSettings(ORGANIZATION, SETTINGS_NAME)


def create_window(
    app: QApplication,
    worker_args: list[str] | None = None,
    *,
    settings: QSettings | None = None,
    runtime_dir: Path | None = None,
    theme_name: str | None = None,
) -> MainWindow:
    """The main window with the remembered (or given) theme applied."""
    from plugin.panel import theme
    from plugin.panel.main_window import MainWindow, app_icon

    settings = settings if settings is not None else default_settings()
    name = theme_name or str(settings.value("theme", "system"))
    if name not in theme.THEMES:
        name = "system"
    theme.apply(app, name)
    settings.setValue("theme", name)
    app.setWindowIcon(app_icon())
    return MainWindow(settings, worker_args or [], runtime_dir)
