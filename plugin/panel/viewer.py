"""The before/after view: one photo, two versions, one shared zoom and pan.

:class:`CompareView` paints a :class:`plugin.panel.preview.PreviewSource`:

* **split** mode: the original left of a draggable divider, the enhanced photo right of
  it, both under the same transform, so the divider wipes between them over the very
  same pixels; **toggle** mode: the whole view shows one of them
  (:meth:`CompareView.set_show_before`), again with the same transform.
* **zoom and pan**: the wheel zooms about the cursor, dragging pans, a double click
  switches between *fit* and *100 %*. 100 % means one photo pixel per *device* pixel, so
  it is exact on HiDPI screens too. Past the overview's resolution the view asks the
  source for a detail layer of the visible region (after a short pause in the motion),
  so zoomed-in views show real pixels.
* the strength (:meth:`CompareView.set_strength`) only re-blends the screen preview;
  nothing is sent to the worker.

Colours come from the widget's palette, so light and dark themes both work.
"""

from __future__ import annotations

from typing import Final

from PyQt6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

from plugin.panel.preview import Layer, PreviewSource, Which

MIN_ZOOM: Final = 0.01  # device pixels per image pixel
MAX_ZOOM: Final = 32.0
WHEEL_STEP: Final = 1.25
_GRAB_PX: Final = 8  # logical pixels around the divider that grab it
_DETAIL_DELAY_MS: Final = 60


class CompareView(QWidget):
    """Before/after view with a split divider or a toggle, zoom and pan.

    Signals:
        zoom_changed(float): the zoom in percent (device pixels per photo pixel × 100).
        view_changed(): zoom, pan, divider or mode changed (for a status line).
    """

    zoom_changed = pyqtSignal(float)
    view_changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self.setAccessibleName("Before and after view")
        self.placeholder = "Drop a photo here, or press Ctrl+O to open one"
        self._source: PreviewSource | None = None
        self._strength = 1.0
        self._scale = 1.0  # logical pixels per photo pixel
        self._center = QPointF()
        self._fit = True
        self._split = True
        self._show_before = False
        self._divider = 0.5
        self._drag: str | None = None
        self._last = QPointF()
        self._detail: Layer | None = None
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(_DETAIL_DELAY_MS)
        self._detail_timer.timeout.connect(self.refresh_detail)
        self._checker = _checker_pixmap()

    # ------------------------------------------------------------------ content

    @property
    def source(self) -> PreviewSource | None:
        return self._source

    def set_source(self, source: PreviewSource | None, *, keep_view: bool = False) -> None:
        """Show ``source`` (fitted, unless ``keep_view`` and the size is unchanged)."""
        old = self._source
        self._source = source
        self._detail = None
        same_size = (old is not None and source is not None
                     and (old.width, old.height) == (source.width, source.height))
        if not (keep_view and same_size):
            self.fit()
        else:
            self._schedule_detail()
        self.update()

    def refresh(self) -> None:
        """Repaint after the source changed (an enhanced image arrived)."""
        self._detail = None
        self.refresh_detail()

    @property
    def strength(self) -> float:
        return self._strength

    def set_strength(self, strength: float) -> None:
        """Blend the enhanced preview at ``strength`` (0..1) and repaint."""
        self._strength = min(1.0, max(0.0, float(strength)))
        self.update()

    # ------------------------------------------------------------------ modes

    @property
    def split(self) -> bool:
        return self._split

    def set_split(self, on: bool) -> None:
        """Split divider (``True``) or toggle between original and enhanced (``False``)."""
        self._split = bool(on)
        self.update()
        self.view_changed.emit()

    @property
    def show_before(self) -> bool:
        return self._show_before

    def set_show_before(self, on: bool) -> None:
        """In toggle mode, show the original instead of the enhanced photo."""
        self._show_before = bool(on)
        self.update()
        self.view_changed.emit()

    @property
    def divider(self) -> float:
        """The divider's position, 0 (left edge) .. 1 (right edge)."""
        return self._divider

    def set_divider(self, fraction: float) -> None:
        self._divider = min(1.0, max(0.0, float(fraction)))
        self.update()
        self.view_changed.emit()

    # ------------------------------------------------------------------ zoom & pan

    @property
    def is_fit(self) -> bool:
        return self._fit

    @property
    def zoom(self) -> float:
        """Device pixels per photo pixel (1.0 = 100 %)."""
        return self._scale * self.devicePixelRatioF()

    @property
    def center(self) -> QPointF:
        """The photo point (in photo pixels) at the middle of the view."""
        return QPointF(self._center)

    def fit_scale(self) -> float:
        if self._source is None:
            return 1.0
        margin = 8
        w = max(1, self.width() - 2 * margin)
        h = max(1, self.height() - 2 * margin)
        return min(w / self._source.width, h / self._source.height)

    def fit(self) -> None:
        """Show the whole photo (and keep fitting it when the window is resized)."""
        self._fit = True
        if self._source is not None:
            self._scale = self.fit_scale()
            self._center = QPointF(self._source.width / 2, self._source.height / 2)
        self._view_moved()

    def actual_size(self, anchor: QPointF | None = None) -> None:
        """100 %: one photo pixel per device pixel, keeping ``anchor`` (a view point)
        where it is (default: the middle)."""
        self.set_zoom(1.0, anchor)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` device pixels per photo pixel about ``anchor`` (a view point)."""
        if self._source is None:
            return
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        fixed = self.to_image(anchor)
        self._scale = zoom / self.devicePixelRatioF()
        self._fit = False
        # keep the photo point under the anchor where it was
        self._center = QPointF(fixed.x() - (anchor.x() - self.width() / 2) / self._scale,
                               fixed.y() - (anchor.y() - self.height() / 2) / self._scale)
        self._clamp_center()
        self._view_moved()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self.zoom * factor, anchor)

    def zoom_in(self) -> None:
        self.zoom_by(WHEEL_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / WHEEL_STEP)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the photo by ``(dx, dy)`` logical pixels."""
        if self._source is None:
            return
        self._center -= QPointF(dx / self._scale, dy / self._scale)
        self._fit = False
        self._clamp_center()
        self._view_moved()

    def to_image(self, point: QPointF) -> QPointF:
        """A view point in photo pixel coordinates."""
        return QPointF(self._center.x() + (point.x() - self.width() / 2) / self._scale,
                       self._center.y() + (point.y() - self.height() / 2) / self._scale)

    def to_view(self, rect: QRect | QRectF) -> QRectF:
        """A photo rectangle in view coordinates."""
        r = QRectF(rect)
        return QRectF(self.width() / 2 + (r.x() - self._center.x()) * self._scale,
                      self.height() / 2 + (r.y() - self._center.y()) * self._scale,
                      r.width() * self._scale, r.height() * self._scale)

    def visible_rect(self) -> QRect:
        """The photo pixels the view shows (clipped to the photo)."""
        if self._source is None:
            return QRect()
        tl = self.to_image(QPointF(0, 0))
        br = self.to_image(QPointF(self.width(), self.height()))
        rect = QRectF(tl, br).toAlignedRect()
        return rect.intersected(self._source.full_rect)

    def _clamp_center(self) -> None:
        assert self._source is not None
        x = min(max(self._center.x(), 0.0), float(self._source.width))
        y = min(max(self._center.y(), 0.0), float(self._source.height))
        self._center = QPointF(x, y)

    def _view_moved(self) -> None:
        self.update()
        self._schedule_detail()
        self.zoom_changed.emit(self.zoom * 100)
        self.view_changed.emit()

    def _schedule_detail(self) -> None:
        self._detail_timer.start()

    def refresh_detail(self) -> None:
        """Ask the source for a detail layer matching the view (now, not after the pause)."""
        self._detail_timer.stop()
        if self._source is not None:
            self._detail = self._source.detail_for(self.visible_rect(), self.zoom)
        self.update()

    # ------------------------------------------------------------------ painting

    def _divider_x(self) -> float:
        return self._divider * self.width()

    def _compare_active(self) -> bool:
        return self._source is not None and self._source.overview.has_after

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        pal = self.palette()
        background = pal.color(QPalette.ColorRole.Window)
        background = background.darker(112) if background.lightness() > 128 else \
            background.darker(140)
        painter.fillRect(self.rect(), background)
        if self._source is None:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            painter.end()
            return
        photo = self.to_view(self._source.full_rect)
        if self._source.has_alpha:
            painter.fillRect(photo.intersected(QRectF(self.rect())), QBrush(self._checker))
        if self._compare_active() and self._split:
            x = self._divider_x()
            painter.save()
            painter.setClipRect(QRectF(0, 0, x, self.height()))
            self._paint_layers(painter, "before")
            painter.restore()
            painter.save()
            painter.setClipRect(QRectF(x, 0, self.width() - x, self.height()))
            self._paint_layers(painter, "after")
            painter.restore()
            self._paint_divider(painter, x)
            self._paint_chip(painter, "Original", left=True)
            self._paint_chip(painter, f"Enhanced {round(self._strength * 100)} %", left=False)
        else:
            which: Which = "before" if (self._show_before or not self._compare_active()) \
                else "after"
            self._paint_layers(painter, which)
            if self._compare_active():
                label = "Original" if which == "before" else \
                    f"Enhanced {round(self._strength * 100)} %"
                self._paint_chip(painter, label, left=True)
        painter.end()

    def _paint_layers(self, painter: QPainter, which: Which) -> None:
        assert self._source is not None
        detail = self._detail
        visible = self.visible_rect()
        layers: list[Layer] = []
        if detail is None or not detail.covers(visible):
            layers.append(self._source.overview)
        if detail is not None and detail.rect.intersects(visible):
            layers.append(detail)
        for layer in layers:
            image: QImage = layer.image(which, self._strength)
            # magnified real pixels stay crisp; reduced ones are filtered
            smooth = self.zoom * layer.step < 2.0
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            painter.drawImage(self.to_view(layer.rect), image,
                              QRectF(0, 0, image.width(), image.height()))

    def _paint_divider(self, painter: QPainter, x: float) -> None:
        pal = self.palette()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        shadow = QColor(0, 0, 0, 90)
        painter.setPen(QPen(shadow, 3))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.setPen(QPen(QColor(255, 255, 255, 230), 1.5))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        r = 12.0
        c = QPointF(x, self.height() / 2)
        painter.setBrush(pal.color(QPalette.ColorRole.Highlight))
        painter.setPen(QPen(QColor(255, 255, 255, 230), 1.5))
        painter.drawEllipse(c, r, r)
        painter.setPen(QPen(pal.color(QPalette.ColorRole.HighlightedText), 1.8))
        for sign in (-1, 1):  # two small arrow heads: ‹ ›
            tip = QPointF(c.x() + sign * 7, c.y())
            painter.drawLine(tip, QPointF(c.x() + sign * 3, c.y() - 4))
            painter.drawLine(tip, QPointF(c.x() + sign * 3, c.y() + 4))
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_chip(self, painter: QPainter, text: str, *, left: bool) -> None:
        fm = self.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 16, fm.height() + 8
        x = 10 if left else self.width() - w - 10
        rect = QRectF(x, 10, w, h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(rect, h / 2, h / 2)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.setBrush(Qt.BrushStyle.NoBrush)

    # ------------------------------------------------------------------ events

    def sizeHint(self) -> QSize:
        return QSize(960, 640)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        if self._fit:
            self.fit()
        else:
            self._schedule_detail()
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        if event is None or self._source is None:
            return
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(WHEEL_STEP**steps, event.position())
        event.accept()

    def _near_divider(self, pos: QPointF) -> bool:
        return (self._compare_active() and self._split
                and abs(pos.x() - self._divider_x()) <= _GRAB_PX)

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self._near_divider(pos):
            self._drag = "divider"
        elif event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag = "pan"
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        self._last = pos
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        pos = event.position()
        if self._drag == "divider":
            self.set_divider(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            self.pan_by(pos.x() - self._last.x(), pos.y() - self._last.y())
        elif self._near_divider(pos):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        elif self._source is not None:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.unsetCursor()
        self._last = pos

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._drag = None
        if event is not None and self._source is not None:
            self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(event.position())
                           else Qt.CursorShape.OpenHandCursor)

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:
        if event is None or self._source is None or self._near_divider(event.position()):
            return
        if self._fit:
            self.actual_size(event.position())
        else:
            self.fit()


def _checker_pixmap() -> QPixmap:
    """A grey checkerboard tile shown behind transparent pixels."""
    tile = QPixmap(16, 16)
    tile.fill(QColor(204, 204, 204))
    p = QPainter(tile)
    p.fillRect(0, 0, 8, 8, QColor(153, 153, 153))
    p.fillRect(8, 8, 8, 8, QColor(153, 153, 153))
    p.end()
    return tile
