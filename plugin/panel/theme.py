"""Light and dark palettes for the panel (Fusion style), or the desktop's own choice.

Every custom widget paints with palette roles, so switching the palette re-colours the
whole window. ``system`` follows the desktop's colour scheme when Qt knows it (Qt 6.5+
``QStyleHints.colorScheme``) and is light otherwise.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QGuiApplication, QPalette
from PyQt6.QtWidgets import QApplication

THEMES: Final = ("system", "light", "dark")


def resolve(theme: str) -> str:
    """``light`` or ``dark`` for a theme name (``system`` asks the desktop)."""
    if theme in ("light", "dark"):
        return theme
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def palette(kind: str) -> QPalette:
    """The Fusion palette for ``light`` or ``dark``."""
    if kind != "dark":
        pal = QPalette(QColor(239, 239, 239))
        pal.setColor(QPalette.ColorRole.Highlight, QColor(38, 110, 200))
        pal.setColor(QPalette.ColorRole.PlaceholderText, QColor(110, 110, 110))
        return pal
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: QColor(45, 45, 48),
        QPalette.ColorRole.WindowText: QColor(230, 230, 230),
        QPalette.ColorRole.Base: QColor(30, 30, 32),
        QPalette.ColorRole.AlternateBase: QColor(52, 52, 56),
        QPalette.ColorRole.ToolTipBase: QColor(60, 60, 64),
        QPalette.ColorRole.ToolTipText: QColor(235, 235, 235),
        QPalette.ColorRole.Text: QColor(230, 230, 230),
        QPalette.ColorRole.Button: QColor(58, 58, 62),
        QPalette.ColorRole.ButtonText: QColor(230, 230, 230),
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Link: QColor(110, 170, 255),
        QPalette.ColorRole.Highlight: QColor(64, 132, 214),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.PlaceholderText: QColor(150, 150, 150),
        QPalette.ColorRole.Light: QColor(80, 80, 84),
        QPalette.ColorRole.Midlight: QColor(66, 66, 70),
        QPalette.ColorRole.Mid: QColor(40, 40, 42),
        QPalette.ColorRole.Dark: QColor(25, 25, 27),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
    }
    for role, colour in roles.items():
        pal.setColor(role, colour)
    disabled = QColor(120, 120, 120)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return pal


def apply(app: QApplication, theme: str) -> str:
    """Use Fusion with the palette of ``theme``; returns ``light`` or ``dark``."""
    kind = resolve(theme)
    app.setStyle("Fusion")
    app.setPalette(palette(kind))
    return kind


def is_dark(pal: QPalette) -> bool:
    return pal.color(QPalette.ColorRole.Window).lightness() < 128
